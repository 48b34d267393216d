//! `/admin/v1/audit/captures`: content capture — start one for a key or a tenant (`POST`, write
//! scope), list them (`GET`, no content), stop one (`DELETE …/{id}`), and read what one captured
//! (`GET …/{id}/records[/{request_id}]`: the opened bodies, so the write scope even to read).
//! Every start, stop and read, refused or not, is an audited act (`capture::acts`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use slog::{error, Logger};

use super::answer::listed;
use super::body::{json_body, Body};
use super::error::AdminError;
use super::resource;
use crate::capture::acts::{self, Action};
use crate::capture::ops::{self, StartCapture};
use crate::capture::records::OpenedRecord;
use crate::capture::rules::{parse_duration, Subject};
use crate::capture::{CaptureDb, CaptureError, RuleRow};
use crate::credentials::AdminPrincipal;
use crate::edge::context::RequestLog;
use crate::state::AppState;
use crate::store::admin_tokens::AdminScope;
use crate::store::{now_unix, rfc3339, Store};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/audit/captures")
            .route(web::get().to(list))
            .route(web::post().to(start)),
    )
    .service(resource("/audit/captures/{id}").route(web::delete().to(stop)))
    .service(resource("/audit/captures/{id}/records").route(web::get().to(records)))
    .service(resource("/audit/captures/{id}/records/{request_id}").route(web::get().to(record)));
}

/// A capture as listed: who started it, for whom, until when; never any content.
#[derive(Debug, Serialize)]
pub struct CaptureView {
    pub id: String,
    pub object: &'static str,
    pub scope: &'static str,
    pub subject: String,
    pub status: &'static str,
    pub reason: Option<String>,
    pub started_by: String,
    pub started_at: String,
    pub ends_at: String,
    pub stopped_at: Option<String>,
    pub stopped_by: Option<String>,
    pub records: i64,
}

impl CaptureView {
    pub fn of(row: RuleRow, now: i64) -> CaptureView {
        CaptureView {
            object: "relay.capture",
            scope: row.subject.scope(),
            subject: row.subject.id().to_owned(),
            status: row.status(now),
            started_at: rfc3339(row.started_at),
            ends_at: rfc3339(row.ends_at),
            stopped_at: row.stopped_at.map(rfc3339),
            id: row.id,
            reason: row.reason,
            started_by: row.started_by,
            stopped_by: row.stopped_by,
            records: row.records,
        }
    }
}

/// One captured call, opened: the request as the client sent it, the answer as it was sent.
#[derive(Debug, Serialize)]
pub struct RecordView {
    pub object: &'static str,
    pub request_id: String,
    pub captured_at: String,
    pub tenant: Option<String>,
    pub key_id: String,
    pub stream: bool,
    pub status: u16,
    pub truncated: bool,
    pub request: Value,
    pub response: Value,
}

impl From<OpenedRecord> for RecordView {
    fn from(record: OpenedRecord) -> RecordView {
        let response = match record.stream {
            true => text(&record.response),
            false => json_or_text(&record.response),
        };
        RecordView {
            object: "relay.capture_record",
            request_id: record.request_id,
            captured_at: rfc3339(record.captured_at),
            tenant: record.tenant,
            key_id: record.key_id,
            stream: record.stream,
            status: record.status,
            truncated: record.truncated,
            request: json_or_text(&record.request),
            response,
        }
    }
}

fn text(bytes: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(bytes).into_owned())
}

fn json_or_text(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| text(bytes))
}

/// `POST /admin/v1/audit/captures`: exactly one of `key` and `tenant` (id or name), one of
/// `duration` (`30m`, `1h`) and `duration_secs`, and an optional `reason`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    key: Option<String>,
    tenant: Option<String>,
    duration: Option<String>,
    duration_secs: Option<u64>,
    reason: Option<String>,
}

impl StartBody {
    fn asked(self) -> Result<StartCapture, AdminError> {
        let subject = match (self.key, self.tenant) {
            (Some(key), None) => Subject::Key(key),
            (None, Some(tenant)) => Subject::Tenant(tenant),
            _ => {
                return Err(AdminError::invalid(
                    "Give exactly one of 'key' and 'tenant': a capture covers one scope.",
                    Some("key"),
                ))
            }
        };
        let duration_secs = match (self.duration, self.duration_secs) {
            (Some(text), None) => parse_duration("duration", &text)?,
            (None, Some(secs)) => secs,
            _ => {
                return Err(AdminError::invalid(
                    "Give exactly one of 'duration' (e.g. \"1h\") and 'duration_secs': a capture always ends.",
                    Some("duration"),
                ))
            }
        };
        Ok(StartCapture {
            subject,
            duration_secs,
            reason: self.reason,
        })
    }
}

async fn list(app: web::Data<AppState>, log: RequestLog) -> Result<HttpResponse, AdminError> {
    if app.capture().db().is_none() {
        return Ok(listed(Vec::<CaptureView>::new()));
    }
    let rows = blocking(&app, &log, |db, _| db.list_rules()).await?;
    let now = now_unix();
    Ok(listed(
        rows.into_iter().map(|row| CaptureView::of(row, now)),
    ))
}

async fn start(
    req: HttpRequest,
    app: web::Data<AppState>,
    body: Body,
    log: RequestLog,
) -> Result<HttpResponse, AdminError> {
    let actor = actor_of(&req);
    let asked = json_body::<StartBody>(&body).and_then(StartBody::asked);
    let target = asked
        .as_ref()
        .map_or("-".to_owned(), |a| a.subject.target());
    let settings = app.settings().audit.capture.clone();
    // Refused before the capture file is looked for: with capture off there may be none.
    let asked = asked.and_then(|a| match a.check(&settings) {
        Ok(()) => Ok(a),
        Err(error) => Err(failure(&log, error)),
    });
    let started = match asked {
        Ok(asked) => {
            let by = actor.clone();
            blocking(&app, &log, move |db, store| {
                ops::start(db, store, &settings, asked, &by, now_unix())
            })
            .await
        }
        Err(error) => Err(error),
    };
    let target = started.as_ref().map_or(target, |row| row.subject.target());
    audit(&log, &actor, Action::Start, &target, &started);
    let row = started?;
    app.capture().reread().await;
    Ok(HttpResponse::Created().json(CaptureView::of(row, now_unix())))
}

async fn stop(
    req: HttpRequest,
    app: web::Data<AppState>,
    id: web::Path<String>,
    log: RequestLog,
) -> Result<HttpResponse, AdminError> {
    let actor = actor_of(&req);
    let id = id.into_inner();
    let (by, rule) = (actor.clone(), id.clone());
    let stopped = blocking(&app, &log, move |db, _| {
        db.stop_rule(&rule, &by, now_unix())
    })
    .await;
    audit(
        &log,
        &actor,
        Action::Stop,
        &acts::capture_target(&id, None),
        &stopped,
    );
    let row = stopped?;
    app.capture().reread().await;
    Ok(HttpResponse::Ok().json(CaptureView::of(row, now_unix())))
}

/// `GET …/{id}/records`: every record of a capture, opened.
async fn records(
    req: HttpRequest,
    app: web::Data<AppState>,
    id: web::Path<String>,
    log: RequestLog,
) -> Result<HttpResponse, AdminError> {
    read(req, app, (id.into_inner(), None), log).await
}

/// `GET …/{id}/records/{request_id}`: one request's record, opened.
async fn record(
    req: HttpRequest,
    app: web::Data<AppState>,
    path: web::Path<(String, String)>,
    log: RequestLog,
) -> Result<HttpResponse, AdminError> {
    let (id, request_id) = path.into_inner();
    read(req, app, (id, Some(request_id)), log).await
}

/// The opened records of a capture, or of one request in it: the write scope only.
async fn read(
    req: HttpRequest,
    app: web::Data<AppState>,
    (id, request_id): (String, Option<String>),
    log: RequestLog,
) -> Result<HttpResponse, AdminError> {
    let actor = actor_of(&req);
    let target = acts::capture_target(&id, request_id.as_deref());
    let read = match writes(&req) {
        true => {
            let one = request_id.clone();
            blocking(&app, &log, move |db, store| {
                ops::read(db, store, &id, one.as_deref())
            })
            .await
        }
        false => Err(AdminError::InsufficientScope),
    };
    audit(&log, &actor, Action::Read, &target, &read);
    let mut opened: Vec<RecordView> = read?.into_iter().map(RecordView::from).collect();
    match (request_id, opened.pop()) {
        (Some(_), Some(one)) => Ok(HttpResponse::Ok().json(one)),
        (_, last) => Ok(listed(opened.into_iter().chain(last))),
    }
}

/// Whether the caller's token has the write scope (reading content needs it).
fn writes(req: &HttpRequest) -> bool {
    req.extensions()
        .get::<AdminPrincipal>()
        .is_some_and(|p| p.scope == AdminScope::Write)
}

fn actor_of(req: &HttpRequest) -> String {
    req.extensions().get::<AdminPrincipal>().map_or_else(
        || "admin_token:unknown".to_owned(),
        |p| acts::admin_actor(&p.token_id),
    )
}

/// Records the act with its outcome: `ok`, or the refusal's code.
fn audit<T>(
    log: &Logger,
    actor: &str,
    action: Action,
    target: &str,
    outcome: &Result<T, AdminError>,
) {
    acts::record_outcome(log, (actor, action, target), outcome, |e| {
        e.code().unwrap_or("refused")
    });
}

/// Runs `work` on the capture file off the arbiter. Without a capture file (capture was never
/// enabled) there is no capture to find.
async fn blocking<T, F>(app: &AppState, log: &Logger, work: F) -> Result<T, AdminError>
where
    T: Send + 'static,
    F: FnOnce(&CaptureDb, &Store) -> Result<T, CaptureError> + Send + 'static,
{
    let capture = app.capture().clone();
    let ran = web::block(move || match capture.db() {
        Some(db) => work(db, capture.store()),
        None => Err(CaptureError::no_file()),
    })
    .await;
    match ran {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(failure(log, error)),
        Err(_) => Err(AdminError::Unavailable),
    }
}

/// A capture failure as the admin API answers it; a fault of ours is logged with its cause.
fn failure(log: &Logger, error: CaptureError) -> AdminError {
    match error {
        CaptureError::Disabled => AdminError::Failed {
            status: StatusCode::FORBIDDEN,
            code: "capture_disabled",
            message: error.to_string(),
        },
        CaptureError::Invalid(invalid) => invalid.into(),
        CaptureError::NotFound(message) => AdminError::NotFound(message),
        CaptureError::Conflict(message) => AdminError::Conflict(message),
        other => {
            error!(log, "capture call failed"; "error" => other.to_string());
            AdminError::Internal
        }
    }
}
