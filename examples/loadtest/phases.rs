//! Every phase of the plan against one target: fast streams at each concurrency, the model
//! list, token-paced streams, then held streams at each count (skipped when the open-file limit
//! cannot hold them), with a line of progress on stderr after each.

use std::time::Duration;

use super::load::{self, Watched};
use super::report::{Held, Measured};
use super::targets::Target;
use super::Plan;

/// Every phase of the plan against one target.
pub async fn measure(
    target: &Target,
    plan: &Plan,
    mock: u32,
    fd_limit: u64,
) -> anyhow::Result<Measured> {
    let watched = Watched {
        proxy: target.proxy_pids.clone(),
        mock,
    };
    let closed = |marker: Option<String>, users: usize| {
        let watched = watched.clone();
        async move {
            let calls = |user| match &marker {
                Some(marker) => target.responses(marker, user),
                None => target.models(),
            };
            let endpoint = &target.endpoint;
            let result =
                load::closed_loop(endpoint, calls, users, plan.warmup, plan.window, &watched).await;
            // Let the closed connections settle before the next phase.
            tokio::time::sleep(Duration::from_millis(300)).await;
            result
        }
    };
    let mut fast = Vec::new();
    for &users in &plan.fast_users {
        let result = closed(Some("bench fast".to_owned()), users).await?;
        progress(target, &format!("fast c={users}"), &result);
        fast.push((users, result));
    }
    let models = closed(None, plan.models_users).await?;
    progress(target, "models", &models);
    let paced = closed(Some(plan.paced_marker()), plan.paced_users).await?;
    progress(target, "paced", &paced);
    let mut held = Vec::new();
    for &streams in &plan.held {
        held.push(held_phase(target, plan, streams, fd_limit).await?);
    }
    Ok(Measured {
        name: target.name.clone(),
        kind: target.kind,
        fast,
        models,
        paced,
        held,
    })
}

async fn held_phase(
    target: &Target,
    plan: &Plan,
    streams: usize,
    fd_limit: u64,
) -> anyhow::Result<Held> {
    let needed = (streams * target.open_files_per_stream() + 200) as u64;
    if needed > fd_limit {
        let reason = format!("needs {needed} open files, the limit is {fd_limit}");
        eprintln!("{}: held {streams}: skipped, {reason}", target.name);
        return Ok(Held::Skipped { streams, reason });
    }
    let marker = plan.held_marker();
    let stream_time = Duration::from_millis(plan.held_shape.1 * plan.held_shape.0 as u64);
    let limit = stream_time + Duration::from_secs(60);
    let calls = |i| target.responses(&marker, i);
    let result = load::held(
        &target.endpoint,
        calls,
        streams,
        plan.held_parallel,
        limit,
        &target.proxy_pids,
    )
    .await?;
    eprintln!(
        "{}: held {streams}: {} errors, peak {} open, proxy RSS {} KB (idle {} KB)",
        target.name, result.errors, result.peak_open, result.peak_rss_kb, result.idle_rss_kb
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(Held::Ran(result))
}

fn progress(target: &Target, phase: &str, result: &load::LoopResult) {
    eprintln!(
        "{}: {phase}: {:.0}/s, {} errors",
        target.name,
        result.rate(),
        result.errors
    );
}
