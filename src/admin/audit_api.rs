//! `GET /admin/v1/audit` (read scope): the audit trail's rows, newest first, filtered as
//! `codex-relay audit search` filters them, a page at a time (`limit`, default 100, at most
//! 1000) behind an opaque `cursor` — the `next_cursor` of the page before.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::error::AdminError;
use super::resource;
use crate::audit::search::{self, parse_time, Cursor, Filter};
use crate::audit::{now_ms, open_for_reading, path_of};
use crate::state::AppState;

/// Rows a page holds unless `limit` says otherwise, and at most.
const PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/audit").route(web::get().to(search_rows)));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    since: Option<String>,
    until: Option<String>,
    tenant: Option<String>,
    key: Option<String>,
    model: Option<String>,
    account: Option<String>,
    status: Option<u16>,
    action: Option<String>,
    request_id: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

impl AuditQuery {
    fn filter(self) -> Result<(Filter, Option<Cursor>, usize), AdminError> {
        let now = now_ms();
        let time = |text: Option<String>, param| match text {
            None => Ok(None),
            Some(text) => parse_time(&text, now).map(Some).ok_or_else(|| {
                AdminError::invalid(
                    "Expected a time: RFC 3339, YYYY-MM-DD, unix seconds, or 15m / 24h / 7d ago.",
                    Some(param),
                )
            }),
        };
        let cursor = match self.cursor {
            None => None,
            Some(text) => Some(Cursor::decode(&text).ok_or_else(|| {
                AdminError::invalid("This is not a cursor this relay gave.", Some("cursor"))
            })?),
        };
        let limit = self.limit.unwrap_or(PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(AdminError::invalid(
                "limit must be 1 to 1000.",
                Some("limit"),
            ));
        }
        let filter = Filter {
            since_ms: time(self.since, "since")?,
            until_ms: time(self.until, "until")?,
            tenant: self.tenant,
            key: self.key,
            model: self.model,
            account: self.account,
            status: self.status,
            action: self.action,
            request_id: self.request_id,
        };
        Ok((filter, cursor, limit))
    }
}

async fn search_rows(
    app: web::Data<AppState>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, AdminError> {
    let (filter, cursor, limit) = query.into_inner().filter()?;
    if !app.audit().enabled() {
        return Err(AdminError::NotFound(
            "The audit trail is off on this relay (audit.enabled = false).".to_owned(),
        ));
    }
    let path = path_of(&app.settings());
    let log = app.log().clone();
    let page = web::block(move || {
        let conn = open_for_reading(&path)?;
        search::search(&conn, &filter, cursor, limit)
    })
    .await
    .map_err(|_| AdminError::Unavailable)?
    .map_err(|error| {
        slog::error!(log, "audit search failed"; "error" => error.to_string());
        AdminError::Internal
    })?;
    Ok(HttpResponse::Ok().json(json!({
        "object": "list",
        "data": page.rows,
        "has_more": page.next.is_some(),
        "next_cursor": page.next.map(|c| c.encode()),
    })))
}
