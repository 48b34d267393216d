//! `codex-relay audit capture …`: content capture from the command line — start one for a key
//! or a tenant, list them, stop one, show what one captured (the opened bodies). The CLI writes
//! the capture file itself; a running server learns of a start or stop within
//! `store.sync_interval_ms`. Each start, stop and read is an audited act, its actor the operating
//! system's user, its line on stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Mutex;

use clap::{ArgGroup, Args, Subcommand};
use slog::{Drain, Logger};

use super::{printable, printable_json, ListArgs};
use crate::admin::captures::{CaptureView, RecordView};
use crate::capture::acts::{self, Action};
use crate::capture::db::{path_beside, CaptureDb};
use crate::capture::ops::{self, StartCapture};
use crate::capture::rules::{parse_duration, Subject};
use crate::capture::CaptureError;
use crate::settings::Settings;
use crate::store::{now_unix, rfc3339, Store};

#[derive(Debug, Subcommand)]
pub enum CaptureCommand {
    /// Start a capture (needs audit.capture.enabled); prints its id alone on stdout.
    Start(StartArgs),
    /// List captures (never their content).
    List(ListArgs),
    /// Stop a capture before its end time.
    Stop { id: String },
    /// Show what a capture recorded, opened: every call, or the one of REQUEST_ID (JSON).
    Show {
        id: String,
        request_id: Option<String>,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("scope").required(true).args(["tenant", "key"])))]
pub struct StartArgs {
    /// The tenant (id or name) whose keys' calls are captured.
    #[arg(long)]
    pub tenant: Option<String>,
    /// The API key (id or name) whose calls are captured.
    #[arg(long)]
    pub key: Option<String>,
    /// How long: 90s, 30m, 1h, 2d (at most audit.capture.max_duration_mins).
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: String,
    /// Why, for whoever reads the list later.
    #[arg(long)]
    pub reason: Option<String>,
}

pub fn capture(store: &Store, settings: &Settings, command: CaptureCommand) -> anyhow::Result<()> {
    let log = act_log();
    let actor = acts::cli_actor();
    let path = path_beside(&settings.store.path);
    match command {
        CaptureCommand::Start(args) => {
            let target = args.tenant.as_ref().map_or_else(
                || format!("key:{}", args.key.as_deref().unwrap_or_default()),
                |t| format!("tenant:{t}"),
            );
            let started = start(store, settings, args, &actor);
            let target = started.as_ref().map_or(target, |row| row.subject.target());
            acts::record_outcome(
                &log,
                (&actor, Action::Start, &target),
                &started,
                CaptureError::code,
            );
            let row = started?;
            eprintln!(
                "started capture {} of {} until {}; the running relay follows within seconds",
                row.id,
                row.subject.target(),
                rfc3339(row.ends_at)
            );
            say!("{}", row.id);
            Ok(())
        }
        CaptureCommand::List(args) => list(&path, args.json),
        CaptureCommand::Stop { id } => {
            let stopped = existing(&path).and_then(|db| db.stop_rule(&id, &actor, now_unix()));
            let target = acts::capture_target(&id, None);
            let act = (actor.as_str(), Action::Stop, target.as_str());
            acts::record_outcome(&log, act, &stopped, CaptureError::code);
            stopped?;
            eprintln!("stopped capture {id}; the running relay follows within seconds");
            Ok(())
        }
        CaptureCommand::Show { id, request_id } => {
            let target = acts::capture_target(&id, request_id.as_deref());
            let read =
                existing(&path).and_then(|db| ops::read(&db, store, &id, request_id.as_deref()));
            acts::record_outcome(
                &log,
                (&actor, Action::Read, &target),
                &read,
                CaptureError::code,
            );
            let records: Vec<RecordView> = read?.into_iter().map(RecordView::from).collect();
            say!("{}", printable_json(&records)?);
            Ok(())
        }
    }
}

fn start(
    store: &Store,
    settings: &Settings,
    args: StartArgs,
    actor: &str,
) -> Result<crate::capture::RuleRow, CaptureError> {
    let subject = match (args.tenant, args.key) {
        (Some(tenant), _) => Subject::Tenant(tenant),
        (None, key) => Subject::Key(key.unwrap_or_default()),
    };
    let asked = StartCapture {
        subject,
        duration_secs: parse_duration("--for", &args.duration)?,
        reason: args.reason,
    };
    let capture = &settings.audit.capture;
    // Refused before the capture file is created: with capture off there should be none.
    asked.check(capture)?;
    let db = CaptureDb::open(&path_beside(&settings.store.path))?;
    ops::start(&db, store, capture, asked, actor, now_unix())
}

/// The capture file, when one exists (a listing or a stop never creates it).
fn existing(path: &std::path::Path) -> Result<CaptureDb, CaptureError> {
    if !path.exists() {
        return Err(CaptureError::no_file());
    }
    CaptureDb::open(path)
}

fn list(path: &std::path::Path, as_json: bool) -> anyhow::Result<()> {
    let rows = match path.exists() {
        true => CaptureDb::open(path)?.list_rules()?,
        false => Vec::new(),
    };
    let now = now_unix();
    let views: Vec<CaptureView> = rows.into_iter().map(|r| CaptureView::of(r, now)).collect();
    if as_json {
        say!("{}", printable_json(&views)?);
        return Ok(());
    }
    say!(
        "{:<36}  {:<44}  {:<7}  {:<20}  {:<20}  {:>7}  STARTED BY",
        "ID",
        "SUBJECT",
        "STATUS",
        "STARTED",
        "ENDS",
        "RECORDS"
    );
    for v in views {
        say!(
            "{:<36}  {:<44}  {:<7}  {:<20}  {:<20}  {:>7}  {}",
            v.id,
            printable(&format!("{}:{}", v.scope, v.subject)),
            v.status,
            v.started_at,
            v.ends_at,
            v.records,
            printable(&v.started_by)
        );
    }
    Ok(())
}

/// The CLI's audit lines: JSON on stderr, written at once (stdout is for what a command prints).
fn act_log() -> Logger {
    let drain = slog_json::Json::new(std::io::stderr())
        .add_default_keys()
        .build();
    Logger::root(Mutex::new(drain).fuse(), slog::o!())
}
