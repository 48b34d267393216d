//! `codex-relay audit …`: verify the chain, search it, export it; and the audit rows of the
//! command line's own acts (`account import`, `key create` …), appended by this process to the
//! same file a running server writes, with the operating-system user as the actor.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use compact_str::ToCompactString;

use super::{printable, printable_json};
use super::{
    AccountCommand, AdminTokenCommand, CaptureCommand, Command, KeyCommand, TenantCommand,
};
use crate::audit::search::{self, parse_time, Filter};
use crate::audit::verify::verify;
use crate::audit::{append_now, now_ms, open_for_reading, path_of, ActorKind, Record, Row};
use crate::settings::Settings;
use crate::store::rfc3339;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain and name the first row edited, deleted, reordered or cut off (exit 1).
    Verify,
    /// Find rows, newest first (a table, or --json / --ndjson).
    Search(SearchArgs),
    /// Write every row of a time range as NDJSON on stdout, oldest first (for a SIEM).
    Export(ExportArgs),
    /// Content capture: the bodies of one key's or tenant's calls, for a limited time, sealed.
    #[command(subcommand)]
    Capture(super::CaptureCommand),
}

/// What a search or an export keeps.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// From this time on: RFC 3339, YYYY-MM-DD (UTC), unix seconds, or ago (15m, 24h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long)]
    pub tenant: Option<String>,
    /// The API key's id.
    #[arg(long)]
    pub key: Option<String>,
    /// The model served (or asked, when none was served).
    #[arg(long)]
    pub model: Option<String>,
    /// The account's relay id.
    #[arg(long)]
    pub account: Option<String>,
    #[arg(long)]
    pub status: Option<u16>,
    /// `responses.create`, `key.create`, `admin.refused` … (docs/audit.md lists them).
    #[arg(long)]
    pub action: Option<String>,
    #[arg(long)]
    pub request_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Most rows shown.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print a JSON array instead of a table.
    #[arg(long, conflicts_with = "ndjson")]
    pub json: bool,
    /// Print one JSON object per line.
    #[arg(long)]
    pub ndjson: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// Runs an `audit` command other than `capture`; `verify` exits 1 on a broken chain, any command
/// 2 on an error.
pub fn audit(settings: &Settings, command: AuditCommand) -> ExitCode {
    let result = match command {
        AuditCommand::Verify => return verify_chain(settings),
        AuditCommand::Search(args) => search_rows(settings, &args),
        AuditCommand::Export(args) => export_rows(settings, &args),
        // It needs the store (the master key): `main` runs it with the store open.
        AuditCommand::Capture(_) => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader has what it wanted (`| head`).
        Err(e) if closed_output(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("codex-relay: {}", printable(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

/// Whether `error` is the output's reader having gone away.
fn closed_output(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn verify_chain(settings: &Settings) -> ExitCode {
    let report = open_for_reading(&path_of(settings)).and_then(|conn| verify(&conn));
    match report {
        Ok(report) => match report.broken {
            None => {
                say!(
                    "the audit trail verifies: {} rows, from seq {} to seq {} (head hash {})",
                    report.rows,
                    report.anchor.seq + 1,
                    report.head.seq,
                    report.head.hash
                );
                ExitCode::SUCCESS
            }
            Some(broken) => {
                eprintln!("codex-relay: the audit trail was tampered with: {broken}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("codex-relay: {e}");
            ExitCode::from(2)
        }
    }
}

impl FilterArgs {
    fn filter(&self) -> anyhow::Result<Filter> {
        let now = now_ms();
        let time = |text: &Option<String>, flag: &str| -> anyhow::Result<Option<i64>> {
            text.as_deref()
                .map(|t| {
                    parse_time(t, now).ok_or_else(|| {
                        anyhow::anyhow!(
                            "--{flag}: expected RFC 3339, YYYY-MM-DD, unix seconds or 15m/24h/7d"
                        )
                    })
                })
                .transpose()
        };
        Ok(Filter {
            since_ms: time(&self.since, "since")?,
            until_ms: time(&self.until, "until")?,
            tenant: self.tenant.clone(),
            key: self.key.clone(),
            model: self.model.clone(),
            account: self.account.clone(),
            status: self.status,
            action: self.action.clone(),
            request_id: self.request_id.clone(),
        })
    }
}

fn search_rows(settings: &Settings, args: &SearchArgs) -> anyhow::Result<()> {
    let conn = open_for_reading(&path_of(settings))?;
    let page = search::search(&conn, &args.filter.filter()?, None, args.limit)?;
    if args.json {
        say!("{}", printable_json(&page.rows)?);
    } else if args.ndjson {
        let mut out = std::io::stdout().lock();
        for row in &page.rows {
            write_line(&mut out, row)?;
        }
    } else {
        print_table(&page.rows);
    }
    if page.next.is_some() {
        eprintln!("(more rows match: raise --limit, or narrow --since/--until)");
    }
    Ok(())
}

fn export_rows(settings: &Settings, args: &ExportArgs) -> anyhow::Result<()> {
    let conn = open_for_reading(&path_of(settings))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let rows = search::export(&conn, &args.filter.filter()?, |row| {
        write_line(&mut out, row)
    })?;
    out.flush()?;
    eprintln!("exported {rows} rows");
    Ok(())
}

/// One row as a line of JSON (serde escapes every control character below U+0020).
fn write_line(out: &mut impl Write, row: &Row) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, row)?;
    out.write_all(b"\n")
}

fn print_table(rows: &[Row]) {
    say!(
        "{:<7}  {:<24}  {:<20}  {:<6}  {:<24}  {:<20}  {:<36}",
        "SEQ",
        "TIME",
        "ACTION",
        "STATUS",
        "WHO",
        "MODEL",
        "ACCOUNT / TARGET"
    );
    for row in rows {
        let r = &row.record;
        let who = r
            .key_name
            .as_deref()
            .or(r.key_id.as_deref())
            .or(r.actor_name.as_deref())
            .or(r.actor_id.as_deref())
            .unwrap_or("-");
        let status = r.status.map_or(r.result.clone().unwrap_or_default(), |s| {
            s.to_compact_string()
        });
        let account = r
            .account_id
            .as_deref()
            .or(r.target.as_deref())
            .unwrap_or("-");
        say!(
            "{:<7}  {:<24}  {:<20}  {:<6}  {:<24}  {:<20}  {:<36}",
            row.seq,
            rfc3339(r.at_ms / 1000),
            printable(&r.action),
            printable(&status),
            printable(who),
            printable(r.model().unwrap_or("-")),
            printable(account),
        );
    }
}

/// The act a command performs and what it targets; `None` for commands that change nothing.
fn act_of(command: &Command) -> Option<(&'static str, Option<String>)> {
    let act = match command {
        Command::Account(AccountCommand::Import(args)) => ("account.import", args.label.clone()),
        Command::Account(AccountCommand::Remove { id }) => ("account.remove", Some(id.clone())),
        Command::Account(AccountCommand::Login(_)) => ("account.login", None),
        Command::Account(AccountCommand::Set(args)) => ("account.routing", Some(args.id.clone())),
        Command::Key(KeyCommand::Create(args)) => ("key.create", Some(args.name.clone())),
        Command::Key(KeyCommand::Update(args)) => ("key.update", Some(args.id.clone())),
        Command::Key(KeyCommand::Revoke { id }) => ("key.revoke", Some(id.clone())),
        Command::Tenant(TenantCommand::Create(args)) => ("tenant.create", Some(args.name.clone())),
        Command::Tenant(TenantCommand::Update(args)) => ("tenant.update", Some(args.id.clone())),
        Command::Tenant(TenantCommand::Delete { id }) => ("tenant.delete", Some(id.clone())),
        Command::AdminToken(AdminTokenCommand::Create { name, .. }) => {
            ("admin_token.create", name.clone())
        }
        Command::AdminToken(AdminTokenCommand::Revoke { id }) => {
            ("admin_token.revoke", Some(id.clone()))
        }
        Command::Audit(AuditCommand::Capture(capture)) => match capture {
            CaptureCommand::Start(args) => {
                let scope = args.key.as_ref().map(|k| format!("key:{k}"));
                let scope = scope.or_else(|| args.tenant.as_ref().map(|t| format!("tenant:{t}")));
                ("capture.start", scope)
            }
            CaptureCommand::Stop { id } => ("capture.stop", Some(id.clone())),
            CaptureCommand::Show { id, .. } => ("capture.read", Some(id.clone())),
            CaptureCommand::List(_) => return None,
        },
        Command::Store(_) => ("store.rekey", None),
        Command::Restore(_) => ("store.restore", None),
        _ => return None,
    };
    Some(act)
}

/// A command's administrative act, taken before it runs (it consumes the command) and recorded
/// with its result after.
pub struct Act(Option<(&'static str, Option<String>)>);

impl Act {
    pub fn of(command: &Command) -> Act {
        Act(act_of(command))
    }

    /// Appends the act's row, with the operating-system user as its actor. A row that cannot be
    /// written is said on stderr: the act itself has happened.
    pub fn record<T>(self, settings: &Settings, result: &anyhow::Result<T>) {
        let Some((action, target)) = self.0 else {
            return;
        };
        let mut record = Record::act(ActorKind::Cli, action);
        record.actor_name = Some(os_user().into());
        record.target = target.map(|t| crate::obs::bounded(&t, TARGET).into());
        if result.is_err() {
            record.result = Some("failed".into());
        }
        if let Err(e) = append_now(settings, record) {
            eprintln!("codex-relay: warning: this act is not in the audit trail: {e}");
        }
    }
}

/// The longest target kept (ids and names are far shorter).
const TARGET: usize = 128;

/// The operating-system user running the command.
fn os_user() -> String {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {uid}"),
    }
}
