//! Capture's audited acts — a capture started, stopped, or its records read — written through
//! [`record`] alone, from the admin API and the CLI alike, so that the one place can send them
//! wherever the audit trail is kept. Today: one structured log line each.

use slog::{info, Logger};

use crate::obs::bounded;

/// Bytes of a target written at most: an operator's text (a key's name) may be long.
const TARGET_BYTES: usize = 256;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Read,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "capture.start",
            Action::Stop => "capture.stop",
            Action::Read => "capture.read",
        }
    }
}

/// One act: who (`admin_token:ID`, `cli:USER`), what, on what (`key:ID`, `tenant:ID`, a capture
/// id), and how it ended (`ok`, or the refusal's code).
#[derive(Debug, Clone, Copy)]
pub struct Act<'a> {
    pub actor: &'a str,
    pub action: Action,
    pub target: &'a str,
    pub result: &'a str,
}

/// Records one act.
pub fn record(log: &Logger, act: Act<'_>) {
    info!(log, "audit act";
        "actor" => act.actor, "action" => act.action.as_str(),
        "target" => &*bounded(act.target, TARGET_BYTES), "result" => act.result);
}

/// Records the act that ended in `outcome`: its result `ok`, or `code` of the refusal.
pub fn record_outcome<T, E>(
    log: &Logger,
    (actor, action, target): (&str, Action, &str),
    outcome: &Result<T, E>,
    code: impl FnOnce(&E) -> &'static str,
) {
    let result = match outcome {
        Ok(_) => "ok",
        Err(error) => code(error),
    };
    record(
        log,
        Act {
            actor,
            action,
            target,
            result,
        },
    );
}

/// How acts name a capture, or one request's record in it.
pub fn capture_target(id: &str, request_id: Option<&str>) -> String {
    match request_id {
        Some(request_id) => format!("capture:{id}/request:{request_id}"),
        None => format!("capture:{id}"),
    }
}

/// The actor an admin token is named as.
pub fn admin_actor(token_id: &str) -> String {
    format!("admin_token:{token_id}")
}

/// The actor the CLI is named as: the operating system's user running it.
pub fn cli_actor() -> String {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => format!("cli:{}", user.name),
        _ => format!("cli:uid={uid}"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::obs::{build_logger, LogSink};
    use crate::settings::LogLevel;

    #[test]
    fn an_act_is_one_line_with_its_actor_and_a_bounded_target() {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let (log, guard) = build_logger(LogSink::Buffer(Arc::clone(&buffer)), LogLevel::Info);
        let long = format!("key:{}", "x".repeat(10_000));
        let act = Act {
            actor: "cli:ops",
            action: Action::Start,
            target: &long,
            result: "ok",
        };
        record(&log, act);
        drop((log, guard));
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["actor"], "cli:ops");
        assert_eq!(line["action"], "capture.start");
        assert!(line["target"].as_str().unwrap().len() < 300, "{line}");
    }
}
