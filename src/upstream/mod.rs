//! The Codex backend as the relay calls it: awc clients per worker (awc is `!Send`), each a
//! connection carrying a bounded number of streams (`connections`) that connects once when cold
//! (`warmup`), the Codex request headers, and the SSE side path ([`sse`]) and non-stream assembly
//! ([`assemble`]).

pub mod assemble;
mod connections;
pub mod drift;
pub mod event_fields;
pub mod headers;
pub mod holdback;
pub mod models;
pub mod outbound;
pub mod rate_limits;
pub mod shown_limits;
pub mod sse;
pub mod usage;
mod warmup;
pub mod websocket;

use std::io;
use std::time::Duration;

use actix_web::error::ParseError;
use actix_web::http::header::HeaderMap;
use awc::error::{ConnectError, SendRequestError};
use bytes::Bytes;
use relay_actors::Lease;
use secrecy::ExposeSecret;

use crate::settings::UpstreamSettings;
use connections::{Connection, Connections};
use outbound::Outbound;
use warmup::{Outgoing, Warmup};

/// The response type awc gives for a streamed upstream answer.
pub type UpstreamResponse = awc::ClientResponse;

/// A worker's connections to the upstream. Cheap to build; build one per worker.
pub struct UpstreamClient {
    connections: Connections,
    responses_url: String,
    /// Opens upstream WebSockets (`websocket.rs`), one connection each.
    websocket: awc::Client,
    websocket_url: String,
    originator: String,
    user_agent: String,
}

impl UpstreamClient {
    pub fn new(settings: &UpstreamSettings, outbound: &Outbound) -> UpstreamClient {
        let connect_timeout = Duration::from_secs(settings.connect_timeout_secs);
        let response_timeout = Duration::from_secs(settings.response_timeout_secs);
        let websocket_outbound = outbound.clone();
        let outbound = outbound.clone();
        let open = move || {
            Connection::new(
                outbound.client(connect_timeout, response_timeout),
                Warmup::new(connect_timeout),
            )
        };
        // Only TLS negotiates HTTP/2; a plain connection carries one stream at a time.
        let cap =
            (settings.base_url.scheme() == "https").then_some(settings.max_streams_per_connection);
        let base = settings.base_url.as_str().trim_end_matches('/');
        let websocket_base = match base.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => format!("ws://{}", base.trim_start_matches("http://")),
        };
        UpstreamClient {
            connections: Connections::new(cap, open),
            responses_url: format!("{base}/responses"),
            websocket: websocket_outbound.websocket_client(connect_timeout),
            websocket_url: format!("{websocket_base}/responses"),
            originator: settings.originator.clone(),
            user_agent: settings.user_agent.clone(),
        }
    }

    /// Sends one Responses request with the lease's credentials; resolves when the status line
    /// and headers have arrived. The body is read by the caller, as it arrives; its stream counts
    /// against its connection until the body ends or is dropped. A request the upstream dropped
    /// unprocessed, or whose connection it closed before answering, goes once more (see
    /// [`unprocessed`] and [`closed_unanswered`]).
    pub async fn send_responses(
        &self,
        lease: &Lease,
        client_headers: &HeaderMap,
        body: Bytes,
    ) -> Result<UpstreamResponse, SendRequestError> {
        match self.send_once(lease, client_headers, body.clone()).await {
            Err(error) if unprocessed(&error) || closed_unanswered(&error) => {
                self.send_once(lease, client_headers, body).await
            }
            sent => sent,
        }
    }

    /// Opens an upstream WebSocket for `lease`'s account (`websocket.rs`).
    pub async fn connect_websocket(
        &self,
        lease: &Lease,
        client_headers: &HeaderMap,
    ) -> Result<websocket::UpstreamSocket, awc::error::WsClientError> {
        let identity = match (
            headers::text(client_headers, "originator"),
            headers::text(client_headers, "user-agent"),
        ) {
            (Some(originator), Some(agent)) => (originator, agent),
            (Some(originator), None) => (originator, self.user_agent.as_str()),
            _ => (self.originator.as_str(), self.user_agent.as_str()),
        };
        websocket::connect(
            &self.websocket,
            &self.websocket_url,
            lease,
            client_headers,
            identity,
        )
        .await
    }

    async fn send_once(
        &self,
        lease: &Lease,
        client_headers: &HeaderMap,
        body: Bytes,
    ) -> Result<UpstreamResponse, SendRequestError> {
        let slot = self.connections.take();
        let connection = slot.connection();
        let mut request = connection
            .http
            .post(&self.responses_url)
            .insert_header((
                "authorization",
                format!("Bearer {}", lease.credentials.access_token.expose_secret()),
            ))
            .insert_header((
                "chatgpt-account-id",
                lease.credentials.chatgpt_account_id.as_str(),
            ))
            .insert_header(("accept", "text/event-stream"))
            .insert_header(("content-type", "application/json"));
        if lease.credentials.is_fedramp {
            request = request.insert_header(("x-openai-fedramp", "true"));
        }
        for (name, value) in client_headers {
            if headers::forwarded_to_upstream(name) {
                request = request.append_header((name.clone(), value.clone()));
            }
        }
        // A Codex client names itself; anything else is presented with the relay's identity.
        match (
            client_headers.get("originator"),
            client_headers.get("user-agent"),
        ) {
            (Some(originator), Some(agent)) => {
                request = request
                    .insert_header(("originator", originator.clone()))
                    .insert_header(("user-agent", agent.clone()));
            }
            (Some(originator), None) => {
                request = request
                    .insert_header(("originator", originator.clone()))
                    .insert_header(("user-agent", self.user_agent.as_str()));
            }
            _ => {
                request = request
                    .insert_header(("originator", self.originator.as_str()))
                    .insert_header(("user-agent", self.user_agent.as_str()));
            }
        }
        let sent = match connection.warmup.outgoing(body).await {
            Outgoing::Plain(body) => request.send_body(body).await,
            Outgoing::Leading(body) => request.send_body(body).await,
        };
        if sent.is_err() {
            connection.warmup.lost();
        }
        Ok(sent?.map_body(|_, body| slot.hold(body)))
    }
}

/// Whether the upstream dropped a request's stream without processing it (RFC 9113 §8.7): it
/// refused it (`REFUSED_STREAM`: a connection too new to know the upstream's stream limit, or
/// past it) or left it out of a graceful `GOAWAY` (the upstream closing the connection, which awc
/// then drops from its pool). Nothing reached the model, and the account did nothing wrong: the
/// request can go again, on a new stream, without counting as the account's failure.
fn unprocessed(error: &SendRequestError) -> bool {
    const NO_ERROR: u32 = 0x0;
    const REFUSED_STREAM: u32 = 0x7;
    let SendRequestError::H2(error) = error else {
        return false;
    };
    match error.reason().map(u32::from) {
        Some(REFUSED_STREAM) => true,
        Some(NO_ERROR) => error.is_go_away(),
        _ => false,
    }
}

/// Whether the upstream closed an HTTP/1.1 request's connection before any answer came. A server
/// closes an idle kept-alive connection on its own schedule (actix-web after 5 s, nginx after
/// 75 s), which the relay's pool cannot know: a request sent on it just then meets a closed
/// connection, and the server never read it. Neither the request nor the account is at fault, and
/// the request goes once more, on a new connection. awc cannot say whether the connection was a
/// kept one; on a new one this costs one more connect before the failure counts, and the upstream
/// gets the request again as failing over to another account would have sent it anyway.
fn closed_unanswered(error: &SendRequestError) -> bool {
    match error {
        // awc's word for a connection that ended before the response's status line.
        SendRequestError::Connect(ConnectError::Disconnected) => true,
        SendRequestError::Send(error) => closed_by_peer(error),
        SendRequestError::Response(ParseError::Io(error)) => {
            error.kind() == io::ErrorKind::ConnectionReset
        }
        _ => false,
    }
}

/// Whether writing to a kept connection failed because the upstream had closed it (reset, or
/// closed for writing): an HTTP request's connection, or a kept upstream WebSocket.
pub fn closed_by_peer(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

#[cfg(test)]
mod tests {
    use std::io::{Error, ErrorKind};

    use super::*;

    #[test]
    fn a_connection_closed_before_any_answer_goes_once_more_and_nothing_else_does() {
        let closed = [
            SendRequestError::Connect(ConnectError::Disconnected),
            SendRequestError::Send(Error::from(ErrorKind::BrokenPipe)),
            SendRequestError::Send(Error::from(ErrorKind::ConnectionReset)),
            SendRequestError::Response(ParseError::Io(Error::from(ErrorKind::ConnectionReset))),
        ];
        for error in closed {
            assert!(closed_unanswered(&error), "{error:?}");
        }
        let other = [
            SendRequestError::Timeout,
            SendRequestError::Connect(ConnectError::Timeout),
            SendRequestError::Connect(ConnectError::Io(Error::from(ErrorKind::ConnectionRefused))),
            SendRequestError::Send(Error::from(ErrorKind::InvalidData)),
            SendRequestError::Response(ParseError::Incomplete),
        ];
        for error in other {
            assert!(!closed_unanswered(&error), "{error:?}");
        }
    }
}
