//! The load benchmark of codex-relay, in one command:
//!
//! ```text
//! cargo run --release --example loadtest                 # the full run, one table
//! cargo run --example loadtest -- --smoke                # CI: a few requests through everything
//! ```
//!
//! It builds the relay and the mock, starts the mock in bench mode, then measures the same
//! load against each target — the mock directly, nginx in front of it (when installed), a
//! relay with each account count, and the mock directly over HTTPS with HTTP/2 followed by the
//! relay that reaches it so — and prints one table with every proxy's ratio to direct over the
//! protocol it speaks to the mock. The mock and the relays over plain HTTP/1.1 are also
//! measured over WebSockets (`--no-websocket` leaves that out, for a relay built before them):
//! the same turns, compared with direct over WebSocket and with SSE in the same run.
//! Benchmarks are not timed tests: the numbers depend on the machine, and the mock, the load
//! and the proxy share its cores.
//!
//! | file           | owns                                                           |
//! |----------------|----------------------------------------------------------------|
//! | `main.rs`      | the command line, the plan, the order of the run               |
//! | `phases.rs`    | every phase of the plan against one target                     |
//! | `audit_ab.rs`  | the audit trail on against off, the two relays in turns        |
//! | `interleave.rs`| the same on the fast stream, the relays taking turns by slices |
//! | `setup.rs`     | building; starting the mock and each relay (data, logins, key) |
//! | `nginx.rs`     | the nginx yardstick                                            |
//! | `targets.rs`   | what is measured and the requests it gets                      |
//! | `load.rs`      | closed loops and held streams                                  |
//! | `client.rs`    | the HTTP/1.1 and HTTP/2 client and the stream checks           |
//! | `websocket.rs` | the WebSocket client and turn checks; held WebSockets          |
//! | `procs.rs`     | child processes, ports, fd limit, `/proc`                      |
//! | `report.rs`    | the table and the JSON                                         |
//! | `report_ws.rs` | their WebSocket rows and fields                                |

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod audit_ab;
mod client;
mod interleave;
mod load;
mod nginx;
mod phases;
mod procs;
mod report;
mod report_ws;
mod setup;
mod targets;
mod websocket;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::json;

use client::Endpoint;
use report::Measured;
use targets::{Kind, Target};

/// Measure codex-relay against a direct connection to the mock upstream (and nginx).
#[derive(Parser)]
#[command(name = "loadtest")]
struct Args {
    /// A few requests through every phase with one account and no nginx; fails on any error.
    #[arg(long)]
    smoke: bool,
    /// Account counts to run a relay with.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    accounts: Vec<usize>,
    /// Held-stream counts.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
    held: Vec<usize>,
    /// Leave out the relay that reaches the mock over HTTPS (HTTP/2, as it reaches the Codex
    /// backend); the other relays reach it over plain HTTP/1.1, as nginx does.
    #[arg(long)]
    no_h2: bool,
    /// Leave out the relay with its audit trail off (beside the one with it on, with the fewest
    /// accounts: what the audit trail costs, measured in the same run).
    #[arg(long)]
    no_audit_off: bool,
    /// Rounds of the fast and paced phases against a relay with its audit trail on and one with
    /// it off, in turns (none with `--no-audit-off`).
    #[arg(long, default_value_t = 6)]
    audit_rounds: usize,
    /// Only the rounds of the audit trail on against off, not the table's targets (to study
    /// what the trail costs, with more `--audit-rounds`).
    #[arg(long, conflicts_with_all = ["no_audit_off", "smoke"])]
    audit_only: bool,
    /// Seconds of the fast stream against the relays with the audit trail on and off
    /// interleaved, after the rounds: one closed loop, the relays taking turns every
    /// `--audit-slice` (0 leaves it out).
    #[arg(long, default_value_t = 60.0)]
    audit_interleave: f64,
    /// Seconds each relay serves in a turn of the interleaved loop.
    #[arg(long, default_value_t = 0.5)]
    audit_slice: f64,
    /// Pairs of relays (trail on, trail off) the interleaved seconds are split among, each pair
    /// new processes: two processes of one build differ by about a percent.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    audit_pairs: u32,
    /// Leave nginx out even when it is installed.
    #[arg(long)]
    no_nginx: bool,
    /// Leave out the WebSocket phases (for a relay built before it spoke WebSocket).
    #[arg(long)]
    no_websocket: bool,
    /// Seconds measured per closed-loop phase (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of warm-up before each closed-loop phase.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Worker threads of the mock.
    #[arg(long, default_value_t = 2)]
    mock_workers: usize,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Use the relay and mock binaries as they are in the target dir.
    #[arg(long)]
    no_build: bool,
    /// Keep the temp dir (logs, relay data, nginx config) and print where it is.
    #[arg(long)]
    keep_temp: bool,
}

/// What a run does.
pub struct Plan {
    pub fast_users: Vec<usize>,
    pub models_users: usize,
    pub paced_users: usize,
    /// (chunks, ms apart) of the token-paced stream and of the held streams.
    pub paced: (usize, u64),
    pub held_shape: (usize, u64),
    pub held: Vec<usize>,
    /// Connects in progress at once while held streams are opened.
    pub held_parallel: usize,
    /// Measure Responses over WebSocket too: turns at each of `ws_users` concurrencies, then
    /// `ws_held` connections open at once, held idle for `ws_hold`.
    pub websocket: bool,
    pub ws_users: Vec<usize>,
    pub ws_held: usize,
    pub ws_hold: Duration,
    /// Also on the relay with its audit trail off.
    pub ws_audit_off: bool,
    pub warmup: Duration,
    pub window: Duration,
    pub accounts: Vec<usize>,
    /// Also measure a relay with the fewest accounts reaching the mock over HTTPS (HTTP/2).
    pub h2: bool,
    /// Also measure a relay with the fewest accounts and `audit.enabled = false`.
    pub audit_off: bool,
    /// Rounds of the audit trail on against off, in turns (`audit_ab.rs`).
    pub audit_rounds: usize,
    /// Then the fast stream against both, interleaved for this long (none when zero), the
    /// relays taking turns every `audit_slice` (`interleave.rs`).
    pub audit_interleave: Duration,
    pub audit_slice: Duration,
    /// The pairs of relays the interleaved loop's time is split among.
    pub audit_pairs: usize,
    /// Measure the table's targets (direct, nginx, the relays); all but `--audit-only`.
    pub table: bool,
    pub nginx: bool,
}

impl Plan {
    fn of(args: &Args) -> anyhow::Result<Plan> {
        if args.smoke {
            return Ok(Plan {
                fast_users: vec![1, 2],
                models_users: 2,
                paced_users: 2,
                paced: (5, 10),
                held_shape: (6, 50),
                held: vec![20],
                held_parallel: 10,
                websocket: !args.no_websocket,
                ws_users: vec![1, 2],
                ws_held: 20,
                // What the smoke checks is that the phases work, in a few seconds.
                ws_hold: Duration::from_millis(100),
                ws_audit_off: false,
                warmup: Duration::from_millis(200),
                window: Duration::from_millis(800),
                accounts: vec![1],
                h2: true,
                audit_off: true,
                audit_rounds: 1,
                audit_interleave: Duration::from_millis(800),
                audit_slice: Duration::from_millis(200),
                audit_pairs: 2,
                table: true,
                nginx: false,
            });
        }
        if args.accounts.is_empty() || args.accounts.contains(&0) {
            bail!("--accounts needs counts of at least 1");
        }
        Ok(Plan {
            fast_users: vec![1, 16, 64],
            models_users: 16,
            paced_users: 16,
            paced: (20, 5),
            // 40 gaps of 250 ms: every stream is still open when the last one opens.
            held_shape: (41, 250),
            held: args.held.clone(),
            held_parallel: 200,
            websocket: !args.no_websocket,
            ws_users: vec![1, 64],
            ws_held: args.held.iter().copied().min().unwrap_or(1000),
            ws_hold: Duration::from_secs(1),
            ws_audit_off: true,
            warmup: Duration::try_from_secs_f64(args.warmup).context("--warmup")?,
            window: Duration::try_from_secs_f64(args.duration).context("--duration")?,
            accounts: args.accounts.clone(),
            h2: !args.no_h2,
            audit_off: !args.no_audit_off,
            audit_rounds: if args.no_audit_off {
                0
            } else {
                args.audit_rounds
            },
            audit_interleave: match args.no_audit_off {
                true => Duration::ZERO,
                false => Duration::try_from_secs_f64(args.audit_interleave)
                    .context("--audit-interleave")?,
            },
            audit_slice: Duration::try_from_secs_f64(args.audit_slice).context("--audit-slice")?,
            audit_pairs: args.audit_pairs as usize,
            table: !args.audit_only,
            nginx: !args.no_nginx,
        })
    }

    pub fn paced_marker(&self) -> String {
        format!("bench paced {} {}", self.paced.0, self.paced.1)
    }

    pub fn held_marker(&self) -> String {
        format!("bench paced {} {}", self.held_shape.0, self.held_shape.1)
    }

    /// Whether the WebSocket phases run against `target`.
    pub fn websocket_on(&self, target: &Target) -> bool {
        let audit_off = matches!(target.kind, Kind::Relay { audit: false, .. });
        self.websocket && target.speaks_websocket() && (self.ws_audit_off || !audit_off)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let plan = Plan::of(&args)?;
    // Dropping `run` on Ctrl-C or SIGTERM drops its child guards, so nothing is left running.
    tokio::select! {
        result = run(&args, &plan) => result,
        () = stop_signal() => bail!("interrupted"),
    }
}

/// Ctrl-C or SIGTERM; a signal that cannot be listened for never comes.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

async fn run(args: &Args, plan: &Plan) -> anyhow::Result<()> {
    let fd_limit = procs::raise_fd_limit()?;
    // The limit is per process; an HTTP/1.1 proxy holds both ends of every held stream.
    let most_held = plan.held.iter().copied().max().unwrap_or(0);
    let needed = (most_held * 2 + 200) as u64;
    if !args.smoke && plan.table && fd_limit < needed {
        eprintln!(
            "warning: open files are limited to {fd_limit} per process; {most_held} held \
             streams need {needed} in an HTTP/1.1 proxy (both ends of each). Phases that cannot \
             fit are skipped."
        );
    }
    let bins = setup::build(args.no_build)?;
    let mut tmp = tempfile::Builder::new()
        .prefix("codex-relay-bench-")
        .tempdir()?;
    if args.keep_temp {
        tmp.disable_cleanup(true);
        eprintln!("logs and data: {}", tmp.path().display());
    }
    // On a failure the logs are what explains it: keep them.
    let (all, audit_ab) = match measure_all(args, plan, &bins, tmp.path(), fd_limit).await {
        Ok(measured) => measured,
        Err(e) => {
            tmp.disable_cleanup(true);
            return Err(e.context(format!("logs kept in {}", tmp.path().display())));
        }
    };
    let machine = procs::machine();
    let settings = json!({
        "profile": if bins.release { "release" } else { "debug" },
        "cores": machine.cores, "kernel": machine.kernel, "cpu": machine.cpu,
        "open_files": fd_limit, "mock_workers": args.mock_workers,
        "warmup_s": plan.warmup.as_secs_f64(), "window_s": plan.window.as_secs_f64(),
        "request_body_bytes": targets::body("bench fast", 0).len(),
        "paced": plan.paced_marker(), "paced_users": plan.paced_users,
        "models_users": plan.models_users,
        "held": plan.held_marker(), "held_parallel": plan.held_parallel,
        "websocket": plan.websocket, "ws_held": plan.ws_held,
        "ws_settle_ms": plan.ws_hold.as_millis() / 2,
    });
    let mut notes = report::settings_notes(&settings);
    notes.extend(all.iter().flat_map(Measured::error_notes));
    let labels = report::Labels {
        models: format!("models c={}", plan.models_users),
        paced: format!(
            "paced {}x{}ms c={}",
            plan.paced.0, plan.paced.1, plan.paced_users
        ),
    };
    if plan.table {
        print!("{}", report::table(&all, &labels, &notes));
    }
    if let Some(audit_ab) = &audit_ab {
        print!("{}", audit_ab.table());
    }
    if let Some(path) = &args.json {
        let mut json = report::json(&all, settings);
        json["audit_ab"] = audit_ab
            .as_ref()
            .map_or(json!(null), audit_ab::AuditAb::json);
        let text = serde_json::to_string_pretty(&json)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let errors: u64 = all.iter().map(Measured::errors).sum::<u64>()
        + audit_ab.as_ref().map_or(0, audit_ab::AuditAb::errors);
    if args.smoke && errors > 0 {
        bail!("{errors} requests failed in the smoke run");
    }
    Ok(())
}

/// The table's targets (`measure_table`; none with `--audit-only`), then, when the plan has
/// rounds of it or the interleaved loop, the audit trail on against off.
async fn measure_all(
    args: &Args,
    plan: &Plan,
    bins: &setup::Binaries,
    dir: &Path,
    fd_limit: u64,
) -> anyhow::Result<(Vec<Measured>, Option<audit_ab::AuditAb>)> {
    let max_accounts = plan.accounts.iter().copied().max().unwrap_or(1);
    let mock = setup::start_mock(bins, dir, args.mock_workers, max_accounts).await?;
    let (mock_addr, mock_pid) = (mock.plain, mock.child.pid());
    let plain = setup::Upstream::Plain(mock_addr);
    let all = match plan.table {
        true => measure_table(plan, bins, dir, fd_limit, &mock).await?,
        false => Vec::new(),
    };
    let audit_ab = match plan.audit_rounds == 0 && plan.audit_interleave.is_zero() {
        true => None,
        false => Some(audit_ab::measure(plan, bins, dir, &plain, mock_pid).await?),
    };
    Ok((all, audit_ab))
}

/// The table's targets in turn: direct, nginx (when there is one), a relay per account count,
/// each stopped before the next starts.
async fn measure_table(
    plan: &Plan,
    bins: &setup::Binaries,
    dir: &Path,
    fd_limit: u64,
    mock: &setup::Mock,
) -> anyhow::Result<Vec<Measured>> {
    let (mock_addr, mock_pid) = (mock.plain, mock.child.pid());
    let direct = Target::direct(Endpoint::plain(mock_addr));
    let mut measured = phases::measure(&direct, plan, mock_pid, fd_limit).await?;
    measured.websocket = phases::websocket(&direct, plan, mock_pid, fd_limit).await?;
    let mut all = vec![measured];
    match nginx::find().filter(|_| plan.nginx) {
        Some(bin) => {
            let (_nginx, pids, addr) = nginx::start(&bin, dir, mock_addr, fd_limit).await?;
            let target = Target::nginx(addr, pids);
            all.push(phases::measure(&target, plan, mock_pid, fd_limit).await?);
        }
        None if plan.nginx => eprintln!("nginx is not on PATH: its column is left out"),
        None => {}
    }
    let plain = setup::Upstream::Plain(mock_addr);
    let fewest = plan.accounts.iter().copied().min().unwrap_or(1);
    let h2 = plan.h2.then_some((fewest, &mock.tls, true));
    let mut relays = Vec::new();
    for &accounts in &plan.accounts {
        relays.push((accounts, &plain, true));
        // Audit off right after the same relay with it on: the two columns price the trail.
        if plan.audit_off && accounts == fewest && relays.iter().all(|r| r.2) {
            relays.push((accounts, &plain, false));
        }
    }
    relays.extend(h2);
    for (accounts, upstream, audit) in relays {
        if let setup::Upstream::Tls { addr, ca } = upstream {
            let direct = Target::direct(Endpoint::h2(*addr, ca)?);
            all.push(phases::measure(&direct, plan, mock_pid, fd_limit).await?);
        }
        let ws = plan.websocket;
        let mut relay = setup::start_relay(bins, dir, accounts, upstream, audit, ws).await?;
        let h2 = matches!(upstream, setup::Upstream::Tls { .. });
        let kind = Kind::Relay {
            accounts,
            h2,
            audit,
        };
        let target = Target::relay(kind, relay.addr, &relay.key, relay.child.pid());
        let mut measured = phases::measure(&target, plan, mock_pid, fd_limit).await?;
        relay.child.check_alive()?;
        if plan.websocket_on(&target) {
            // A new process: the allocator keeps what the held streams freed, and WebSockets
            // opened in it would look free.
            relay = relay.restart("relay-websocket.log").await?;
            let target = Target::relay(kind, relay.addr, &relay.key, relay.child.pid());
            measured.websocket = phases::websocket(&target, plan, mock_pid, fd_limit).await?;
            relay.child.check_alive()?;
        }
        all.push(measured);
    }
    Ok(all)
}
