//! Runs the mock Codex upstream on its own, so that operators can try codex-relay offline:
//!
//! ```text
//! cargo run --example mock_upstream -- --listen 127.0.0.1:9090 --write-auth-json auth.json
//! ```
//!
//! `--bench --workers N` serves the load test's upstream (`app.rs`'s `bench.rs`).
//! `GET /responses` speaks Responses over WebSocket (`websocket.rs`) unless `--no-websocket`.
//!
//! The mock itself lives in `app.rs`; this file owns only the command line and the lifecycle.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod app;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

/// Serve a mock of the Codex backend and its OAuth issuer.
#[derive(Parser)]
#[command(name = "mock_upstream")]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: String,
    /// Write a fake Codex login (auth.json, mode 0600) that this mock accepts, then serve.
    #[arg(long, value_name = "FILE")]
    write_auth_json: Option<PathBuf>,
    /// Also write a login for a second account, `acct-mock-overloaded`, whose every answer is a
    /// 200 stream failing with `server_is_overloaded` before any output (to try failover).
    #[arg(long, value_name = "FILE")]
    write_overloaded_auth_json: Option<PathBuf>,
    /// Also write a login for `acct-mock-failing`, whose every answer is a 500 (to try failover
    /// on an upstream error).
    #[arg(long, value_name = "FILE")]
    write_failing_auth_json: Option<PathBuf>,
    /// Also write a login for `acct-mock-capped`, whose every answer is a 429
    /// `usage_limit_reached` resetting in an hour, with its `x-codex-*` rate-limit headers at
    /// 100% used (to see an account cool).
    #[arg(long, value_name = "FILE")]
    write_capped_auth_json: Option<PathBuf>,
    /// Answer like a backend that has changed: an event type and an `x-codex-*` header no
    /// relay knows yet in every normal answer (to see the relay count upstream drift).
    #[arg(long)]
    drift: bool,
    /// Answer WebSocket upgrades of `GET /responses` with 426, as a backend without WebSockets
    /// does (the Codex CLI then falls back to SSE); by default they are served.
    #[arg(long)]
    no_websocket: bool,
    /// Pause between SSE events (and WebSocket frames), in milliseconds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    event_delay_ms: u64,
    /// Bench mode, for load tests: `POST /responses` (and each `response.create` over a
    /// WebSocket) answers from prebuilt streams chosen by a marker in `input` (`bench fast`,
    /// `bench paced N M`), and no request is recorded.
    #[arg(long)]
    bench: bool,
    /// Worker threads in bench mode.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "bench")]
    workers: usize,
    /// Write fake logins for accounts acct-bench-1..N (`--accounts`) into this folder, as
    /// `acct-bench-<i>.json`, then serve.
    #[arg(long, value_name = "DIR")]
    write_auth_dir: Option<PathBuf>,
    /// Bench mode: also serve HTTPS here (HTTP/2 or HTTP/1.1, as the Codex backend does), with a
    /// self-signed certificate written to `--tls-cert-out`.
    #[arg(long, value_name = "ADDR", requires_all = ["bench", "tls_cert_out"])]
    tls_listen: Option<String>,
    /// Where `--tls-listen` writes its certificate (PEM), for the relay's `upstream.ca_file`.
    #[arg(long, value_name = "FILE", requires = "tls_listen")]
    tls_cert_out: Option<PathBuf>,
    /// How many logins `--write-auth-dir` writes.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        requires = "write_auth_dir"
    )]
    accounts: usize,
}

/// The accounts `--write-overloaded-auth-json`, `--write-failing-auth-json` and
/// `--write-capped-auth-json` log in.
const OVERLOADED: &str = "acct-mock-overloaded";
const FAILING: &str = "acct-mock-failing";
const CAPPED: &str = "acct-mock-capped";

/// How long the capped account's usage limit lasts.
const CAPPED_FOR_SECS: i64 = 3600;

/// The fake login is valid for ten days, long enough for an afternoon of trying things out.
const AUTH_JSON_VALIDITY_SECS: i64 = 10 * 24 * 3600;

#[actix_rt::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let (mock, tls_addr) = if args.bench {
        let tls = args
            .tls_listen
            .as_deref()
            .zip(args.tls_cert_out.as_deref())
            .map(|(listen, cert_out)| app::bench::TlsListen { listen, cert_out });
        app::bench::start(&args.listen, args.workers, tls).await?
    } else {
        (app::MockUpstream::start(&args.listen).await?, None)
    };
    mock.state
        .set_event_delay(Duration::from_millis(args.event_delay_ms));
    mock.state.set_drift(args.drift);
    mock.state.set_websocket(!args.no_websocket);
    if let Some(path) = &args.write_auth_json {
        write_auth_json(path, "acct-mock-1")?;
        eprintln!(
            "wrote a fake Codex login for account acct-mock-1 to {}",
            path.display()
        );
    }
    if let Some(dir) = &args.write_auth_dir {
        std::fs::create_dir_all(dir)?;
        for i in 1..=args.accounts {
            let account = format!("acct-bench-{i}");
            write_auth_json(&dir.join(format!("{account}.json")), &account)?;
        }
        eprintln!(
            "wrote {} fake Codex logins (acct-bench-1..{}) to {}",
            args.accounts,
            args.accounts,
            dir.display()
        );
    }
    // Accounts whose every answer is scripted; their names say how they answer.
    let scripted_logins = [
        (&args.write_overloaded_auth_json, OVERLOADED, overloaded()),
        (&args.write_failing_auth_json, FAILING, server_error()),
        (&args.write_capped_auth_json, CAPPED, usage_limit_reached()),
    ];
    for (path, account, answer) in scripted_logins {
        if let Some(path) = path {
            write_auth_json(path, account)?;
            mock.state.set_standing_for(account, Some(answer));
            eprintln!(
                "wrote a fake Codex login for account {account} to {}",
                path.display()
            );
        }
    }
    println!("mock upstream listening on {}", mock.url());
    if let Some(addr) = tls_addr {
        println!("mock upstream listening with TLS on https://{addr}");
    }
    actix_rt::signal::ctrl_c().await?;
    mock.stop().await;
    Ok(())
}

/// A 200 stream that fails with `server_is_overloaded` before any output.
fn overloaded() -> app::Scripted {
    app::Scripted::FailedInStream {
        code: "server_is_overloaded".to_owned(),
        message: "Our servers are currently overloaded. Please try again later.".to_owned(),
    }
}

fn server_error() -> app::Scripted {
    app::Scripted::Status {
        status: 500,
        body: r#"{"detail":"Internal Server Error"}"#.to_owned(),
        headers: vec![],
    }
}

/// The backend's 429 for a spent plan: the reset in the body, and the rate-limit headers saying
/// the short window is used up.
fn usage_limit_reached() -> app::Scripted {
    let now = chrono::Utc::now().timestamp();
    let resets_at = now + CAPPED_FOR_SECS;
    let body = serde_json::json!({"error": {
        "type": "usage_limit_reached",
        "message": "The usage limit has been reached",
        "plan_type": "plus",
        "resets_at": resets_at,
        "resets_in_seconds": CAPPED_FOR_SECS,
    }});
    let header = |name: &str, value: String| (name.to_owned(), value);
    app::Scripted::Status {
        status: 429,
        body: body.to_string(),
        headers: vec![
            header("x-codex-primary-used-percent", "100.0".to_owned()),
            header("x-codex-primary-window-minutes", "300".to_owned()),
            header("x-codex-primary-reset-at", resets_at.to_string()),
            header("x-codex-secondary-used-percent", "42.0".to_owned()),
            header("x-codex-secondary-window-minutes", "10080".to_owned()),
            header("x-codex-secondary-reset-at", (now + 7 * 86_400).to_string()),
        ],
    }
}

fn write_auth_json(path: &Path, account: &str) -> std::io::Result<()> {
    let expires = chrono::Utc::now().timestamp() + AUTH_JSON_VALIDITY_SECS;
    let auth = app::fake_auth_json(account, "dev@example.com", "plus", expires);
    let text = serde_json::to_string_pretty(&auth).map_err(std::io::Error::other)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    // The mode above applies only to a new file; an existing one is tightened too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")
}
