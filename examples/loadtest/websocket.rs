//! Responses over WebSocket as the Codex CLI speaks it: `GET /responses` upgraded with
//! `OpenAI-Beta: responses_websockets=2026-02-06`, one `response.create` frame per turn, then one
//! frame per event until the turn's last — `response.completed`, or an error: `response.failed`,
//! `response.incomplete`, `error`, or the connection ending first. Two phases use it:
//!
//! * `ws fast c=N`: the closed loop of `load.rs`, each user on one connection for all its turns,
//!   so what is measured is the turn and not the handshake;
//! * `ws held K`: K connections, each left open and idle after one turn (by then a relay has
//!   opened its own WebSocket to the upstream and bound it to an account), all open at once while
//!   the proxy's memory is read; then all are closed.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::client::Timing;
use super::load::{self, Client, LoopResult};
use super::procs;

type Socket = WebSocketStream<TcpStream>;

/// How long a closing handshake may take; a proxy that does not answer one has a bug worth
/// counting.
const CLOSING: Duration = Duration::from_secs(5);

/// What the WebSocket phases measured on one target.
pub struct Phases {
    /// (users, result) per concurrency; a request of the result is a turn.
    pub fast: Vec<(usize, LoopResult)>,
    pub held: Held,
}

pub enum Held {
    Ran(HeldResult),
    Skipped { connections: usize, reason: String },
}

impl Held {
    pub fn connections(&self) -> usize {
        match self {
            Held::Ran(r) => r.connections,
            Held::Skipped { connections, .. } => *connections,
        }
    }
}

/// A connection, and the turn sent over it again and again.
pub struct Turns {
    addr: SocketAddr,
    url: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    frame: Utf8Bytes,
}

impl Turns {
    pub fn new(
        addr: SocketAddr,
        path: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
        frame: String,
    ) -> Turns {
        Turns {
            addr,
            url: format!("ws://{addr}{path}"),
            headers,
            frame: frame.into(),
        }
    }

    async fn connect(&self) -> anyhow::Result<Socket> {
        let mut request = self.url.as_str().into_client_request()?;
        request.headers_mut().extend(self.headers.iter().cloned());
        let addr = self.addr;
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        match tokio_tungstenite::client_async(request, stream).await {
            Ok((socket, _)) => Ok(socket),
            Err(tungstenite::Error::Http(response)) => {
                let body = response.body().as_deref().unwrap_or_default();
                let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                bail!("GET {} refused: {} {text}", self.url, response.status())
            }
            Err(e) => Err(e).with_context(|| format!("handshake with {}", self.url)),
        }
    }

    /// Sends the turn and reads its events to the last.
    async fn turn(&self, socket: &mut Socket) -> anyhow::Result<Timing> {
        let sent = Instant::now();
        socket
            .send(Message::Text(self.frame.clone()))
            .await
            .context("sending response.create")?;
        let (mut first_byte, mut first_token, mut bytes) = (None, None, 0);
        loop {
            let message = socket
                .next()
                .await
                .context("the connection ended mid-turn")?
                .context("reading the turn's events")?;
            let text = match message {
                Message::Text(text) => text,
                Message::Close(frame) => bail!("closed mid-turn: {}", closing(frame.as_ref())),
                Message::Binary(_) => bail!("a binary frame mid-turn"),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
            let at = sent.elapsed();
            first_byte.get_or_insert(at);
            bytes += text.len() as u64;
            match event_type(&text)?.as_ref() {
                "response.output_text.delta" => {
                    first_token.get_or_insert(at);
                }
                "response.completed" => {
                    return Ok(Timing {
                        total: at,
                        first_byte,
                        first_token,
                        bytes,
                    })
                }
                kind @ ("response.failed" | "response.incomplete" | "error") => {
                    bail!("the turn ended with {kind}: {}", excerpt(&text))
                }
                _ => {}
            }
        }
    }
}

impl Client for Turns {
    type Conn = Socket;

    async fn open(&self) -> anyhow::Result<Socket> {
        self.connect().await
    }

    async fn send(&self, socket: &mut Socket) -> anyhow::Result<Timing> {
        self.turn(socket).await
    }
}

/// The one field read of each event; borrowed, so reading an event allocates nothing.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

fn event_type(text: &str) -> anyhow::Result<Cow<'_, str>> {
    serde_json::from_str::<Event>(text)
        .map(|event| event.kind)
        .with_context(|| format!("a frame that is no event: {}", excerpt(text)))
}

fn excerpt(text: &str) -> &str {
    let end = (0..=text.len().min(200))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    &text[..end]
}

fn closing(frame: Option<&CloseFrame>) -> String {
    frame.map_or("no close code".to_owned(), |f| {
        format!("{} {}", u16::from(f.code), f.reason)
    })
}

/// What a phase of held connections measured.
pub struct HeldResult {
    pub connections: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    /// Connections open at once, each after its turn.
    pub open: usize,
    /// Resident memory of the proxy before the phase, with all of them open and idle, and the
    /// most seen meanwhile, in KB (0 when direct).
    pub idle_rss_kb: u64,
    pub open_rss_kb: u64,
    pub peak_rss_kb: u64,
}

impl HeldResult {
    /// The proxy's memory per open connection, in KB (none when direct).
    pub fn kb_per_connection(&self) -> Option<f64> {
        (self.open_rss_kb > 0).then(|| {
            self.open_rss_kb.saturating_sub(self.idle_rss_kb) as f64
                / self.connections.max(1) as f64
        })
    }
}

/// Opens `n` connections, `parallel` at a time, each with one turn; once all are open, holds
/// them idle for `hold` and reads the proxy's memory in its second half (by then the turns'
/// buffers are freed, and what remains is what an idle connection keeps); then closes them all.
pub async fn held(
    turns: impl Fn(usize) -> Turns,
    n: usize,
    parallel: usize,
    limit: Duration,
    hold: Duration,
    proxy: &[u32],
) -> anyhow::Result<HeldResult> {
    let idle_rss_kb = procs::rss_kb(proxy);
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn(load::sample_rss(proxy.to_vec(), Arc::clone(&sampling)));
    let gate = Arc::new(Semaphore::new(parallel.max(1)));
    let (opened, mut reports) = mpsc::unbounded_channel();
    let (release, released) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let (turns, gate) = (turns(i), Arc::clone(&gate));
        let (opened, released) = (opened.clone(), released.clone());
        tasks.spawn(async move {
            let opening = async {
                let _permit = gate.acquire_owned().await?;
                let mut socket = turns.connect().await?;
                turns.turn(&mut socket).await?;
                anyhow::Ok(socket)
            };
            let socket = tokio::time::timeout(limit, opening)
                .await
                .unwrap_or_else(|_| Err(anyhow!("not open within {limit:?}")));
            // Each task reports once and lets go of its sender, so the count below ends even
            // when a task dies before it reports.
            let _ = opened.send(socket.is_ok());
            drop(opened);
            keep_idle(socket?, released).await
        });
    }
    drop(opened);
    let mut open = 0;
    while let Some(ok) = reports.recv().await {
        open += usize::from(ok);
    }
    tokio::time::sleep(hold / 2).await;
    let mut open_rss_kb = 0;
    let reading = Instant::now();
    while reading.elapsed() < hold / 2 {
        open_rss_kb = open_rss_kb.max(procs::rss_kb(proxy));
        tokio::time::sleep(load::RSS_EVERY).await;
    }
    release.send_replace(true);
    let mut result = HeldResult {
        connections: n,
        errors: 0,
        first_error: None,
        open,
        idle_rss_kb,
        open_rss_kb,
        peak_rss_kb: 0,
    };
    while let Some(outcome) = tasks.join_next().await {
        let error = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => format!("{e:#}"),
            Err(e) => e.to_string(),
        };
        result.errors += 1;
        result.first_error.get_or_insert(error);
    }
    sampling.store(false, Ordering::SeqCst);
    result.peak_rss_kb = sampler.await.unwrap_or(0);
    Ok(result)
}

/// Keeps an open connection idle until released (answering pings: a relay closes a connection
/// that misses them), then closes it as a client that is done does.
async fn keep_idle(mut socket: Socket, mut released: watch::Receiver<bool>) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            _ = released.wait_for(|released| *released) => break,
            message = socket.next() => match message {
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(frame))) => {
                    bail!("closed while held open: {}", closing(frame.as_ref()))
                }
                Some(Ok(_)) => bail!("a message while held open, with no turn asked for"),
                Some(Err(e)) => return Err(e).context("while held open"),
                None => bail!("the connection ended while held open"),
            },
        }
    }
    let closed = async {
        socket.close(None).await?;
        // The proxy's Close answers ours; the stream ends after it.
        while socket.next().await.transpose()?.is_some() {}
        anyhow::Ok(())
    };
    tokio::time::timeout(CLOSING, closed)
        .await
        .unwrap_or_else(|_| Err(anyhow!("no Close answered within {CLOSING:?}")))
        .context("closing")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_told_by_its_type_wherever_the_field_is() {
        let kind = |text| event_type(text).map(Cow::into_owned).ok();
        let completed = r#"{"response":{"type":"x"},"type":"response.completed"}"#;
        assert_eq!(kind(completed).as_deref(), Some("response.completed"));
        assert_eq!(kind(r#"{"type":"err\u006fr"}"#).as_deref(), Some("error"));
        assert_eq!(kind(r#"{"data":1}"#), None);
    }

    #[test]
    fn an_excerpt_ends_on_a_character() {
        let text = "é".repeat(150);
        assert_eq!(excerpt(&text).len(), 200);
        assert_eq!(excerpt("short"), "short");
    }
}
