//! Every phase of the plan against one target: fast streams at each concurrency, the model
//! list, token-paced streams, then held streams at each count (skipped when the open-file limit
//! cannot hold them); and apart, the WebSocket phases: fast turns at each concurrency, then held
//! connections (skipped so too). A line of progress on stderr after each.

use std::time::Duration;

use super::load::{self, Client, LoopResult, Watched};
use super::report::{Held, Measured};
use super::targets::{Kind, Target};
use super::{setup, websocket, Plan};

/// Lets the closed connections of a phase settle before the next one.
const SETTLE: Duration = Duration::from_millis(300);

/// Every phase of the plan against one target but the WebSocket ones.
pub async fn measure(
    target: &Target,
    plan: &Plan,
    mock: u32,
    fd_limit: u64,
) -> anyhow::Result<Measured> {
    let watched = watched(target, mock);
    let http = |marker: Option<String>| {
        move |user| load::Http {
            endpoint: target.endpoint.clone(),
            call: match &marker {
                Some(marker) => target.responses(marker, user),
                None => target.models(),
            },
        }
    };
    let mut fast = Vec::new();
    for &users in &plan.fast_users {
        let result = closed(http(Some("bench fast".to_owned())), users, plan, &watched).await?;
        progress(target, &format!("fast c={users}"), &result);
        fast.push((users, result));
    }
    let models = closed(http(None), plan.models_users, plan, &watched).await?;
    progress(target, "models", &models);
    let paced = http(Some(plan.paced_marker()));
    let paced = closed(paced, plan.paced_users, plan, &watched).await?;
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
        websocket: None,
    })
}

/// The WebSocket phases against one target; none where the plan or the target has none.
pub async fn websocket(
    target: &Target,
    plan: &Plan,
    mock: u32,
    fd_limit: u64,
) -> anyhow::Result<Option<websocket::Phases>> {
    if !plan.websocket_on(target) {
        return Ok(None);
    }
    let watched = watched(target, mock);
    let mut fast = Vec::new();
    for &users in &plan.ws_users {
        let turns = |user| target.turns("bench fast", user);
        let result = closed(turns, users, plan, &watched).await?;
        progress(target, &format!("ws fast c={users}"), &result);
        fast.push((users, result));
    }
    let held = ws_held_phase(target, plan, fd_limit).await?;
    Ok(Some(websocket::Phases { fast, held }))
}

pub(super) fn watched(target: &Target, mock: u32) -> Watched {
    Watched {
        proxy: target.proxy_pids.clone(),
        mock,
    }
}

pub(super) async fn closed<C: Client>(
    clients: impl Fn(usize) -> C,
    users: usize,
    plan: &Plan,
    watched: &Watched,
) -> anyhow::Result<LoopResult> {
    let result = load::closed_loop(clients, users, plan.warmup, plan.window, watched).await;
    tokio::time::sleep(SETTLE).await;
    result
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

async fn ws_held_phase(
    target: &Target,
    plan: &Plan,
    fd_limit: u64,
) -> anyhow::Result<websocket::Held> {
    let connections = plan.ws_held;
    let needed = (connections * target.open_files_per_stream() + 200) as u64;
    let reason = if needed > fd_limit {
        Some(format!(
            "needs {needed} open files, the limit is {fd_limit}"
        ))
    } else if !matches!(target.kind, Kind::Relay { .. }) || connections <= setup::WS_PER_KEY {
        None
    } else {
        Some(format!(
            "a relay key holds at most {} connections",
            setup::WS_PER_KEY
        ))
    };
    if let Some(reason) = reason {
        eprintln!("{}: ws held {connections}: skipped, {reason}", target.name);
        return Ok(websocket::Held::Skipped {
            connections,
            reason,
        });
    }
    let turns = |i| target.turns("bench fast", i);
    let (parallel, limit, hold) = (plan.held_parallel, Duration::from_secs(60), plan.ws_hold);
    let proxy = &target.proxy_pids;
    let result = websocket::held(turns, connections, parallel, limit, hold, proxy).await?;
    let rss = match result.open_rss_kb {
        0 => String::new(),
        open => format!(
            ", proxy RSS {open} KB open (idle {} KB)",
            result.idle_rss_kb
        ),
    };
    eprintln!(
        "{}: ws held {connections}: {} errors, {} open{rss}",
        target.name, result.errors, result.open
    );
    // Each connection was closed with a handshake: less is left to settle than after streams.
    tokio::time::sleep(SETTLE).await;
    Ok(websocket::Held::Ran(result))
}

fn progress(target: &Target, phase: &str, result: &load::LoopResult) {
    eprintln!(
        "{}: {phase}: {:.0}/s, {} errors",
        target.name,
        result.rate(),
        result.errors
    );
}
