//! One client turn on its way upstream: over the connection's upstream WebSocket when it is bound
//! to the lease's account (opening one when not), or over HTTP while the upstream refuses
//! WebSockets — a refusal (426) starts that period, which `websocket.fallback_secs` bounds.

use std::io;
use std::time::Duration;

use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use awc::error::{SendRequestError, WsClientError};
use bytes::Bytes;
use relay_actors::Lease;
use serde_json::json;
use slog::{warn, Logger};

use crate::state::AppState;
use crate::upstream::websocket::{self, as_event, SocketSlot, UpstreamSocket};
use crate::upstream::{closed_by_peer, UpstreamClient, UpstreamResponse};

/// What a turn needs to go upstream either way.
pub struct UpstreamTurn {
    pub state: AppState,
    pub slot: SocketSlot,
    /// The turn as an HTTP body (no `type`, no `generate`), for when it goes over HTTP.
    pub http_body: Bytes,
    /// `"generate": false`: a prewarm, which over HTTP the relay answers itself.
    pub prewarm: bool,
    /// The upstream slug, for a prewarm's answer.
    pub model: String,
    /// The turn names a `previous_response_id` the connection's upstream WebSocket made.
    pub continues: bool,
    pub log: Logger,
}

impl UpstreamTurn {
    pub async fn send(
        &self,
        upstream: &UpstreamClient,
        lease: &Lease,
        headers: &HeaderMap,
        frame: Bytes,
    ) -> Result<UpstreamResponse, SendRequestError> {
        if self.state.websocket_fallback().falls_back() {
            return self.over_http(upstream, lease, headers).await;
        }
        let settings = self.state.settings();
        let first_frame_within = Duration::from_secs(settings.upstream.response_timeout_secs);
        let fallback = Duration::from_secs(settings.websocket.fallback_secs);
        drop(settings);
        // A renewed token opens a new connection with it — except for a turn that continues a
        // response only the kept connection knows: that connection is already authenticated,
        // and a new one would cost the client its conversation. Should the backend refuse the
        // old token on it (401), the connection is dropped and the renewal opens a new one.
        let kept = self.slot.borrow_mut().take().filter(|socket| {
            socket.account_id == lease.account_id
                && (socket.token_version == lease.token_version || self.continues)
        });
        if let Some(socket) = kept {
            match websocket::turn(socket, frame.clone(), self.slot.clone(), first_frame_within)
                .await
            {
                // A kept connection the backend closed meanwhile is not the account's failure:
                // the turn goes once more, on a new connection.
                Err(SendRequestError::Send(error)) if closed_by_peer(&error) => {}
                sent => return sent,
            }
        }
        let socket = match self.open(upstream, lease, headers).await {
            Ok(socket) => socket,
            Err(Refused::Upgrade) => {
                warn!(self.log, "the upstream refused a WebSocket; turns go over HTTP for a while";
                    "fallback_secs" => fallback.as_secs());
                self.state.websocket_fallback().fall_back_for(fallback);
                return self.over_http(upstream, lease, headers).await;
            }
            Err(Refused::Status(status)) => return Ok(refusal(status)),
            Err(Refused::Unreachable(error)) => return Err(error),
        };
        websocket::turn(socket, frame, self.slot.clone(), first_frame_within).await
    }

    async fn open(
        &self,
        upstream: &UpstreamClient,
        lease: &Lease,
        headers: &HeaderMap,
    ) -> Result<UpstreamSocket, Refused> {
        match upstream.connect_websocket(lease, headers).await {
            Ok(socket) => Ok(socket),
            Err(WsClientError::InvalidResponseStatus(StatusCode::UPGRADE_REQUIRED)) => {
                Err(Refused::Upgrade)
            }
            Err(WsClientError::InvalidResponseStatus(status)) => Err(Refused::Status(status)),
            Err(WsClientError::SendRequest(error)) => Err(Refused::Unreachable(error)),
            Err(other) => Err(Refused::Unreachable(SendRequestError::Send(
                io::Error::other(other.to_string()),
            ))),
        }
    }

    async fn over_http(
        &self,
        upstream: &UpstreamClient,
        lease: &Lease,
        headers: &HeaderMap,
    ) -> Result<UpstreamResponse, SendRequestError> {
        if self.prewarm {
            return Ok(prewarmed(&self.model));
        }
        upstream
            .send_responses(lease, headers, self.http_body.clone())
            .await
    }
}

/// Why no upstream WebSocket was opened.
enum Refused {
    /// 426: the upstream does not serve WebSockets.
    Upgrade,
    /// Another status (401, 429, 5xx…), judged like the same answer over HTTP.
    Status(StatusCode),
    Unreachable(SendRequestError),
}

/// The upstream's refusal of a WebSocket, as the answer the failover loop judges: awc keeps no
/// body or headers of a refused upgrade.
fn refusal(status: StatusCode) -> UpstreamResponse {
    let body = serde_json::to_vec(&json!({
        "error": {"message": format!("The upstream refused the WebSocket with status {}.", status.as_u16())}
    }))
    .unwrap_or_default();
    let body = futures_util::stream::once(async move { Ok(Bytes::from(body)) });
    websocket::response(status, HeaderMap::new(), Box::pin(body))
}

/// A prewarm answered by the relay (over HTTP the backend would generate): the response is made
/// and completed with no output, as the backend answers `"generate": false`.
fn prewarmed(model: &str) -> UpstreamResponse {
    let id = format!("resp_{}", uuid::Uuid::new_v4().simple());
    let created_at = chrono::Utc::now().timestamp();
    let response = |status: &str| {
        json!({"id": id, "object": "response", "created_at": created_at, "status": status,
            "model": model, "output": []})
    };
    let mut completed = response("completed");
    completed["usage"] = json!({"input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0}});
    let events = [
        json!({"type": "response.created", "sequence_number": 0, "response": response("in_progress")}),
        json!({"type": "response.completed", "sequence_number": 1, "response": completed}),
    ];
    let body: Vec<u8> = events
        .iter()
        .flat_map(|event| as_event(event.to_string().as_bytes()))
        .collect();
    let body = futures_util::stream::once(async move { Ok(Bytes::from(body)) });
    websocket::response(StatusCode::OK, HeaderMap::new(), Box::pin(body))
}
