//! Per-request context: a request id (the client's `x-request-id` when it is sane, else a new
//! one), a logger that stamps it on every line, and one access-log line when the answer leaves.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use slog::{info, o, Logger};

use super::auth::Principal;
use super::AppState;
use crate::admin::auth::AdminPrincipal;

/// Available to handlers through `web::ReqData<RequestContext>`.
#[derive(Clone)]
pub struct RequestContext {
    pub id: String,
    pub log: Logger,
}

/// What a handler learned that the access log should say (never content, never secrets).
#[derive(Clone, Default)]
pub struct AccessNote {
    pub model: Option<String>,
    pub account: Option<String>,
    pub upstream_status: Option<u16>,
    pub upstream_request_id: Option<String>,
    pub stream: bool,
}

fn sane_request_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane_request_id(v))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("req_{}", uuid::Uuid::new_v4().simple()));
    let root = match req.app_data::<web::Data<AppState>>() {
        Some(state) => state.log().clone(),
        None => Logger::root(slog::Discard, o!()),
    };
    let log = root.new(o!("request_id" => id.clone()));
    req.extensions_mut().insert(RequestContext {
        id: id.clone(),
        log: log.clone(),
    });
    let method = req.method().to_string();
    let path = req.path().to_owned();
    let mut res = next.call(req).await?;
    let relay_id = HeaderValue::from_str(&id).ok();
    if let Some(value) = relay_id {
        let headers = res.headers_mut();
        headers.insert(HeaderName::from_static("x-relay-request-id"), value.clone());
        if !headers.contains_key("x-request-id") {
            headers.insert(HeaderName::from_static("x-request-id"), value);
        }
    }
    let extensions = res.request().extensions();
    let key_id = extensions.get::<Principal>().map(|p| p.key_id.to_string());
    let admin_token_id = extensions
        .get::<AdminPrincipal>()
        .map(|p| p.token_id.to_string());
    let note = extensions.get::<AccessNote>().cloned().unwrap_or_default();
    drop(extensions);
    info!(log, "request";
        "method" => method, "path" => path, "status" => res.status().as_u16(),
        "duration_ms" => started.elapsed().as_millis() as u64,
        "key_id" => key_id, "admin_token_id" => admin_token_id, "model" => note.model, "account_id" => note.account,
        "upstream_status" => note.upstream_status,
        "upstream_request_id" => note.upstream_request_id, "stream" => note.stream);
    Ok(res)
}
