//! What is measured — the mock directly (over plain HTTP/1.1, and over HTTPS with HTTP/2 as the
//! baseline of a relay that reaches it so), nginx in front of it, a relay in front of it — and
//! the requests each one gets. Every target is sent the same body: a Codex-like turn (a developer
//! prompt, the user's message carrying the mock's bench marker, a tool, encrypted reasoning
//! asked for) with a `prompt_cache_key` per virtual user, as each Codex session has its own; over
//! a WebSocket, the same fields in a `response.create` frame.

use std::net::SocketAddr;

use bytes::Bytes;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::Method;
use serde_json::{json, Map, Value};

use super::client::{Call, Endpoint};
use super::websocket::Turns;

/// The `client_version` a Codex catalog request names (the relay's own default).
const CLIENT_VERSION: &str = "0.125.0";
/// The account the direct requests name, as the relay would for its first account.
const DIRECT_ACCOUNT: &str = "acct-bench-1";
/// The developer prompt: about a kilobyte, so the relay has a real body to parse and forward.
const PROMPT_SENTENCE: &str = "You are Codex, a coding agent running in a terminal. ";
const PROMPT_REPEAT: usize = 20;

#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    /// `h2`: over HTTPS with HTTP/2 (else plain HTTP/1.1).
    Direct {
        h2: bool,
    },
    Nginx,
    /// `h2`: the relay reaches the mock over HTTPS with HTTP/2 (else plain HTTP/1.1); `audit`:
    /// its audit trail is on (`audit.enabled`, the default).
    Relay {
        accounts: usize,
        h2: bool,
        audit: bool,
    },
}

impl Kind {
    /// The target whose numbers this one's are compared with: direct over the protocol this
    /// target speaks to the mock.
    pub fn baseline(self) -> Kind {
        match self {
            Kind::Direct { h2 } | Kind::Relay { h2, .. } => Kind::Direct { h2 },
            Kind::Nginx => Kind::Direct { h2: false },
        }
    }
}

pub struct Target {
    pub name: String,
    pub kind: Kind,
    pub endpoint: Endpoint,
    /// The proxy's processes, whose CPU and memory are measured (none for direct).
    pub proxy_pids: Vec<u32>,
    bearer: String,
}

impl Target {
    /// The mock itself, over the protocol `endpoint` speaks: plain HTTP/1.1, or HTTPS with
    /// HTTP/2 as a Codex client reaches the backend without a relay (the baseline of a relay
    /// that reaches the mock so).
    pub fn direct(endpoint: Endpoint) -> Target {
        let h2 = endpoint.is_h2();
        Target {
            name: if h2 { "direct (h2)" } else { "direct" }.to_owned(),
            kind: Kind::Direct { h2 },
            endpoint,
            proxy_pids: Vec::new(),
            bearer: "Bearer bench-direct".to_owned(),
        }
    }

    pub fn nginx(addr: SocketAddr, pids: Vec<u32>) -> Target {
        Target {
            name: "nginx".to_owned(),
            kind: Kind::Nginx,
            endpoint: Endpoint::plain(addr),
            proxy_pids: pids,
            bearer: "Bearer bench-nginx".to_owned(),
        }
    }

    pub fn relay(kind: Kind, addr: SocketAddr, key: &str, pid: u32) -> Target {
        let Kind::Relay {
            accounts,
            h2,
            audit,
        } = kind
        else {
            unreachable!("a relay target is a relay");
        };
        let plural = if accounts == 1 { "acct" } else { "accts" };
        let upstream = if h2 { ", h2" } else { "" };
        let audit_off = if audit { "" } else { ", audit off" };
        Target {
            name: format!("relay ({accounts} {plural}{upstream}{audit_off})"),
            kind,
            endpoint: Endpoint::plain(addr),
            proxy_pids: vec![pid],
            bearer: format!("Bearer {key}"),
        }
    }

    /// Open files one held stream takes in the busiest process of this target: the load
    /// generator's one socket direct; both ends in a proxy, except a relay over HTTP/2, whose
    /// streams to the upstream share a few connections.
    pub fn open_files_per_stream(&self) -> usize {
        match self.kind {
            Kind::Direct { .. } | Kind::Relay { h2: true, .. } => 1,
            Kind::Nginx | Kind::Relay { h2: false, .. } => 2,
        }
    }

    fn is_relay(&self) -> bool {
        matches!(self.kind, Kind::Relay { .. })
    }

    /// Whether the WebSocket phases run here: over plain HTTP/1.1 only, the mock and a relay.
    /// nginx is a yardstick for HTTP; direct (h2) has no WebSocket (the mock speaks it over
    /// HTTP/1.1 only), so a relay over HTTPS would have no baseline.
    pub fn speaks_websocket(&self) -> bool {
        matches!(
            self.kind,
            Kind::Direct { h2: false } | Kind::Relay { h2: false, .. }
        )
    }

    /// `GET /responses` upgraded, then turns with `marker` as the user's message, in
    /// conversation `conversation`.
    pub fn turns(&self, marker: &str, conversation: usize) -> Turns {
        let path = if self.is_relay() {
            "/v1/responses"
        } else {
            "/responses"
        };
        let mut headers = self.call(Method::GET, path, Bytes::new()).headers;
        headers.push((
            HeaderName::from_static("openai-beta"),
            HeaderValue::from_static("responses_websockets=2026-02-06"),
        ));
        Turns::new(
            self.endpoint.addr,
            path,
            headers,
            frame(marker, conversation),
        )
    }

    /// `POST /responses` with `marker` as the user's message, in conversation `conversation`.
    pub fn responses(&self, marker: &str, conversation: usize) -> Call {
        let path = if self.is_relay() {
            "/v1/responses"
        } else {
            "/responses"
        };
        let mut call = self.call(Method::POST, path, body(marker, conversation));
        call.headers.push((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ));
        call.headers.push((
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        ));
        call.stream = true;
        call
    }

    /// The model list: the relay's `/v1/models`, or the backend's Codex catalog.
    pub fn models(&self) -> Call {
        let path = if self.is_relay() {
            "/v1/models".to_owned()
        } else {
            format!("/models?client_version={CLIENT_VERSION}")
        };
        self.call(Method::GET, &path, Bytes::new())
    }

    fn call(&self, method: Method, path: &str, body: Bytes) -> Call {
        let mut headers = Vec::new();
        if let Ok(bearer) = HeaderValue::from_str(&self.bearer) {
            headers.push((header::AUTHORIZATION, bearer));
        }
        if !self.is_relay() {
            headers.push((
                HeaderName::from_static("chatgpt-account-id"),
                HeaderValue::from_static(DIRECT_ACCOUNT),
            ));
        }
        Call {
            method,
            path: path.to_owned(),
            headers,
            body,
            stream: false,
        }
    }
}

/// The request body every target gets; its size is reported with the settings.
pub fn body(marker: &str, conversation: usize) -> Bytes {
    Bytes::from(fields(marker, conversation).to_string())
}

/// The body's fields as a WebSocket turn sends them.
pub fn frame(marker: &str, conversation: usize) -> String {
    let mut frame = Map::new();
    frame.insert("type".to_owned(), json!("response.create"));
    if let Value::Object(fields) = fields(marker, conversation) {
        frame.extend(fields);
    }
    Value::Object(frame).to_string()
}

fn fields(marker: &str, conversation: usize) -> Value {
    let message = |role: &str, text: &str| json!({"type": "message", "role": role, "content": [{"type": "input_text", "text": text}]});
    json!({
        "model": "gpt-5.5",
        "input": [
            message("developer", &PROMPT_SENTENCE.repeat(PROMPT_REPEAT)),
            message("user", marker),
        ],
        "tools": [{
            "type": "function", "name": "shell_command", "strict": false,
            "description": "Runs a shell command and returns its output.",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
        }],
        "tool_choice": "auto",
        "parallel_tool_calls": true,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": false,
        "stream": true,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": format!("bench-conversation-{conversation}"),
    })
}
