//! How one attempt of a Responses request reaches the upstream: as an HTTP request, or as a turn
//! on a WebSocket connection (`websocket::upstream_turn`). Either way the answer is an upstream
//! response the failover loop judges the same way.

use actix_web::http::header::HeaderMap;
use awc::error::SendRequestError;
use bytes::Bytes;
use relay_actors::Lease;

use super::upstream_turn::UpstreamTurn;
use crate::upstream::{UpstreamClient, UpstreamResponse};

pub enum Via<'a> {
    Http,
    WebSocket(&'a UpstreamTurn),
}

impl Via<'_> {
    /// Sends `payload` with `lease`'s credentials; resolves when the answer's head is known.
    pub async fn send(
        &self,
        upstream: &UpstreamClient,
        lease: &Lease,
        headers: &HeaderMap,
        payload: Bytes,
    ) -> Result<UpstreamResponse, SendRequestError> {
        match self {
            Via::Http => upstream.send_responses(lease, headers, payload).await,
            Via::WebSocket(turn) => turn.send(upstream, lease, headers, payload).await,
        }
    }
}
