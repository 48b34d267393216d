//! The operations both the admin API and the CLI offer, with the same checks: start a capture
//! (only with `audit.capture.enabled`, for one existing key or tenant, for at most
//! `audit.capture.max_duration_mins`), stop one, read its records. Blocking.

use super::db::{CaptureDb, NewRule, RuleRow};
use super::records::OpenedRecord;
use super::rules::Subject;
use super::CaptureError;
use crate::bounds::{invalid, Invalid};
use crate::settings::CaptureSettings;
use crate::store::{Store, StoreError};

/// Most characters of a capture's reason.
const REASON_CHARS: usize = 500;

/// A capture an operator asks for.
#[derive(Debug, Clone)]
pub struct StartCapture {
    pub subject: Subject,
    pub duration_secs: u64,
    pub reason: Option<String>,
}

impl StartCapture {
    /// Refuses a capture the settings do not allow.
    pub fn check(&self, settings: &CaptureSettings) -> Result<(), CaptureError> {
        if !settings.enabled {
            return Err(CaptureError::Disabled);
        }
        let max_secs = settings.max_duration_mins.saturating_mul(60);
        if self.duration_secs == 0 || self.duration_secs > max_secs {
            let reason = format!(
                "must be 1 second to {} minutes (audit.capture.max_duration_mins)",
                settings.max_duration_mins
            );
            return Err(Invalid {
                field: "duration",
                reason,
            }
            .into());
        }
        let reason = self.reason.as_deref().unwrap_or_default();
        if reason.chars().count() > REASON_CHARS {
            invalid("reason", "must be at most 500 characters")?;
        }
        if reason.chars().any(char::is_control) {
            invalid("reason", "must not hold control characters")?;
        }
        Ok(())
    }
}

/// Starts a capture for `actor` at `now`: the subject must exist (a key or tenant may be named
/// by its name too; the capture keeps its id).
pub fn start(
    db: &CaptureDb,
    store: &Store,
    settings: &CaptureSettings,
    asked: StartCapture,
    actor: &str,
    now: i64,
) -> Result<RuleRow, CaptureError> {
    asked.check(settings)?;
    let subject = resolve(store, asked.subject)?;
    let ends_at = now.saturating_add(i64::try_from(asked.duration_secs).unwrap_or(i64::MAX));
    let id = db.insert_rule(&NewRule {
        subject,
        reason: asked.reason,
        started_by: actor.to_owned(),
        started_at: now,
        ends_at,
    })?;
    db.get_rule(&id)
}

/// The subject with the id the store knows it by.
fn resolve(store: &Store, subject: Subject) -> Result<Subject, CaptureError> {
    let unknown = |field: &'static str, what: &'static str| {
        move |error| match error {
            StoreError::NotFound(_) => CaptureError::from(Invalid {
                field,
                reason: format!("names no {what}"),
            }),
            other => CaptureError::Store(other),
        }
    };
    Ok(match subject {
        Subject::Key(key) => {
            Subject::Key(store.get_key(&key).map_err(unknown("key", "API key"))?.id)
        }
        Subject::Tenant(tenant) => Subject::Tenant(
            store
                .get_tenant(&tenant)
                .map_err(unknown("tenant", "tenant"))?
                .id,
        ),
    })
}

/// The records of capture `id` — one (`request_id`) or all — opened with the key each names
/// (the store's, or the one it had before a rekey while this handle is open).
pub fn read(
    db: &CaptureDb,
    store: &Store,
    id: &str,
    request_id: Option<&str>,
) -> Result<Vec<OpenedRecord>, CaptureError> {
    match request_id {
        Some(request_id) => Ok(vec![db.open_record(store, id, request_id)?]),
        None => db.open_records(store, id),
    }
}
