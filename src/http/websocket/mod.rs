//! Responses over WebSocket: `GET /v1/responses` upgraded, as the Codex CLI speaks it (one
//! connection per session, one `response.create` frame per turn, follow-ups that send only the
//! new input with `previous_response_id`). The handshake is authenticated and rate-limited like
//! every `/v1` call (the scope's middleware), then:
//!
//! - `governance::websockets` caps the connections each key holds open;
//! - `session.rs` runs the connection: turns one at a time, pings, idle and size limits, close
//!   codes;
//! - `turn.rs` serves each turn as the HTTP path serves a call (governance, failover, accounting,
//!   access line, metrics, audit row);
//! - `http::upstream_turn` sends it over the connection's upstream WebSocket (bound to one
//!   account), or over HTTP while the upstream refuses WebSockets;
//! - `frames.rs` writes the events and errors as text frames.

mod frames;
mod session;
mod turn;

use std::rc::Rc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ApiError;
use super::responses::principal_of;
use crate::edge::context::RequestContext;
use crate::state::AppState;
use crate::upstream::headers::text;
use crate::upstream::websocket::BETA;
use crate::upstream::UpstreamClient;

/// `GET /v1/responses`: a WebSocket upgrade, or 426 for a plain request, a version of the
/// protocol the relay does not speak, or a relay with WebSockets turned off (Codex clients then
/// use HTTP streaming at once).
pub async fn open(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    upstream: web::Data<UpstreamClient>,
    ctx: web::ReqData<RequestContext>,
) -> Result<HttpResponse, ApiError> {
    let settings = state.settings();
    let upgrade =
        text(req.headers(), "upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        return Err(ApiError::UpgradeRequired(
            "This endpoint streams responses over a WebSocket (GET with an upgrade) or HTTP server-sent events (POST).",
        ));
    }
    if !settings.websocket.enabled {
        return Err(ApiError::UpgradeRequired(
            "WebSockets are turned off on this relay; use HTTP streaming (POST /v1/responses).",
        ));
    }
    if !speaks_version(&req) {
        return Err(ApiError::UpgradeRequired(
            "This relay speaks Responses over WebSocket version responses_websockets=2026-02-06 only; use it, or HTTP streaming.",
        ));
    }
    let principal = principal_of(&req)?;
    let limit = settings.websocket.max_connections_per_key;
    let open = state
        .websockets()
        .open(&principal.key_id, limit)
        .map_err(|refused| ApiError::TooManyConnections {
            limit: refused.limit,
        })?;
    let (response, session, messages) = actix_ws::handle(&req, payload)
        .map_err(|_| ApiError::invalid("This is not a valid WebSocket handshake.", None))?;
    let clocks = session::Clocks {
        idle: Duration::from_secs(settings.websocket.idle_timeout_secs),
        ping: Duration::from_secs(settings.websocket.ping_interval_secs),
        upstream_idle: Duration::from_secs(settings.websocket.upstream_idle_secs),
    };
    let conn = turn::Connection {
        req: req.clone(),
        state: AppState::clone(&state),
        upstream: upstream.clone(),
        slot: Rc::default(),
        // Each turn logs under its own request id; the connection's is named beside it.
        log: state.log().new(slog::o!("connection_id" => ctx.id.clone())),
    };
    actix_web::rt::spawn(session::serve(conn, session, messages, open, clocks));
    Ok(response)
}

/// Whether the client asks for no WebSocket beta, or for the one the relay speaks.
fn speaks_version(req: &HttpRequest) -> bool {
    let asked: Vec<&str> = req
        .headers()
        .get_all("openai-beta")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|beta| beta.starts_with("responses_websockets"))
        .collect();
    asked.is_empty() || asked.contains(&BETA)
}
