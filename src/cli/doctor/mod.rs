//! `codex-relay doctor`: what a person checks first when the relay misbehaves, each finding `ok`,
//! `warn` or `fail` with a one-line message and what to do.
//!
//! It only reads: the store is opened read-only (nothing migrated, no file mode changed, no master
//! key generated), and the network checks send one unauthenticated GET to the upstream and to the
//! OAuth issuer. No secret is printed: the master key by its id and source, accounts by their
//! relay id and label.
//!
//! Exit status: 1 when any check fails (with `--strict`, also when one warns), else 0. `--json`
//! prints `{"checks":[{"name","status","message","hint"}]}` (`hint` is null for `ok`); the network
//! checks (`upstream`, `oauth_issuer`, `clock`) are left out with `--offline`, the running relay's
//! (`relay`) unless an admin token is given (`CODEX_RELAY_ADMIN_TOKEN[_FILE]`).
//!
//! | file         | owns                                                              |
//! |--------------|-------------------------------------------------------------------|
//! | `store.rs`   | the store, its master key and its files' modes                    |
//! | `pool.rs`    | the admin plane's exposure, the accounts, the free disk           |
//! | `live.rs`    | the running relay: accounts serving with tokens not yet stored    |
//! | `network.rs` | the upstream and the issuer over TLS, the clock against the upstream |

mod live;
mod network;
mod pool;
mod store;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::printable;
use crate::settings::{Settings, SettingsSource};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON: {"checks":[{"name","status","message","hint"}]}.
    #[arg(long)]
    pub json: bool,
    /// Skip the checks that need the network (upstream, OAuth issuer, clock).
    #[arg(long)]
    pub offline: bool,
    /// Exit non-zero on a warning too, not only on a failure.
    #[arg(long)]
    pub strict: bool,
}

/// How a check came out; ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One check's outcome: what was found, and what to do about it (none when all is well).
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub name: &'static str,
    pub status: Status,
    pub message: String,
    pub hint: Option<String>,
}

impl Finding {
    fn ok(name: &'static str, message: impl Into<String>) -> Finding {
        Finding {
            name,
            status: Status::Ok,
            message: message.into(),
            hint: None,
        }
    }

    fn warn(name: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Finding {
        Finding::problem(name, Status::Warn, message.into(), hint.into())
    }

    fn fail(name: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Finding {
        Finding::problem(name, Status::Fail, message.into(), hint.into())
    }

    fn problem(name: &'static str, status: Status, message: String, hint: String) -> Finding {
        Finding {
            name,
            status,
            message,
            hint: Some(hint),
        }
    }
}

/// Runs every check over the settings `file` (`--config`, else `CODEX_RELAY_CONFIG`) names, prints
/// the findings and returns the exit status they call for.
pub fn doctor(file: Option<&Path>, args: &DoctorArgs) -> ExitCode {
    let findings = findings(&SettingsSource::new(file), args.offline);
    print(&findings, args.json);
    let worst = findings.iter().map(|f| f.status).max();
    let failing = match worst {
        Some(Status::Fail) => true,
        Some(Status::Warn) => args.strict,
        _ => false,
    };
    if failing {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn findings(source: &SettingsSource, offline: bool) -> Vec<Finding> {
    let settings = match source.load() {
        Ok(settings) => settings,
        Err(e) => {
            return vec![Finding::fail(
                "settings",
                e.to_string(),
                "correct the setting it names (`codex-relay config show` says where each value \
                 comes from); the other checks need valid settings",
            )]
        }
    };
    let mut findings = vec![Finding::ok("settings", settings_message(&settings))];
    let opened = store::checks(
        &settings.store.path,
        Duration::from_secs(settings.store.master_key_command_timeout_secs),
        &mut findings,
    );
    pool::checks(&settings, opened.as_ref(), &mut findings);
    findings.extend(live::check(&settings));
    if !offline {
        findings.extend(network::checks(&settings));
    }
    findings
}

fn settings_message(settings: &Settings) -> String {
    match settings.source.path() {
        Some(path) => format!("valid (file {} over the defaults)", path.display()),
        None => "valid (the defaults, no settings file)".to_owned(),
    }
}

fn print(findings: &[Finding], as_json: bool) {
    if as_json {
        let document = serde_json::json!({ "checks": findings });
        match super::printable_json(&document) {
            Ok(text) => say!("{text}"),
            Err(e) => eprintln!("codex-relay: cannot print the findings: {e}"),
        }
        return;
    }
    for finding in findings {
        let status = match finding.status {
            Status::Ok => "ok",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        say!(
            "{status:<4}  {:<14}  {}",
            finding.name,
            printable(&finding.message)
        );
        if let Some(hint) = &finding.hint {
            say!("{:<20}  → {}", "", printable(hint));
        }
    }
}
