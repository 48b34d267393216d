//! The load generator's HTTP client: one keep-alive connection (hyper 1) — plain HTTP/1.1, or
//! HTTPS with HTTP/2 as a client of the Codex backend speaks it — one request at a time, the
//! body read to its end while the times that matter are taken — first body byte, first
//! `response.output_text.delta` — and a stream is checked to end with `response.completed`
//! (anything else, a status but 200 included, is an error).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use memchr::memmem::Finder;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const FIRST_TOKEN: &[u8] = b"event: response.output_text.delta\n";
const COMPLETED: &[u8] = b"event: response.completed\n";

/// One kind of request, sent many times.
#[derive(Clone)]
pub struct Call {
    pub method: Method,
    /// Path and query (origin form).
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// An SSE answer that must end with `response.completed`.
    pub stream: bool,
}

/// What one answer took.
pub struct Timing {
    pub total: Duration,
    pub first_byte: Option<Duration>,
    pub first_token: Option<Duration>,
    /// Body bytes received.
    pub bytes: u64,
}

/// Where connections go, and how.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `None`: plain HTTP/1.1. Some: HTTPS offering only HTTP/2, trusting this setup.
    tls: Option<TlsConnector>,
}

impl Endpoint {
    pub fn plain(addr: SocketAddr) -> Endpoint {
        Endpoint { addr, tls: None }
    }

    /// HTTPS with HTTP/2 to `addr`, trusting the PEM certificates in `ca_file` only.
    pub fn h2(addr: SocketAddr, ca_file: &Path) -> anyhow::Result<Endpoint> {
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_file_iter(ca_file)? {
            roots.add(certificate?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tls = Some(TlsConnector::from(Arc::new(config)));
        Ok(Endpoint { addr, tls })
    }

    pub fn is_h2(&self) -> bool {
        self.tls.is_some()
    }
}

/// A connection's sender, and how its requests name the server: HTTP/1.1 in `Host`, HTTP/2 in
/// the URI (`:authority`).
enum Sender {
    Http1 {
        sender: http1::SendRequest<Full<Bytes>>,
        host: HeaderValue,
    },
    Http2 {
        sender: http2::SendRequest<Full<Bytes>>,
        origin: String,
    },
}

pub struct Conn {
    sender: Sender,
}

impl Conn {
    pub async fn open(endpoint: &Endpoint) -> anyhow::Result<Conn> {
        let addr = endpoint.addr;
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        // The connection's I/O runs beside the caller; it ends when the sender is dropped.
        let sender = match &endpoint.tls {
            None => {
                let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(connection);
                let host = HeaderValue::from_str(&addr.to_string())?;
                Sender::Http1 { sender, host }
            }
            Some(tls) => {
                let name = ServerName::IpAddress(addr.ip().into());
                let stream = tls.connect(name, stream).await.context("TLS handshake")?;
                let io = TokioIo::new(stream);
                let (sender, connection) = http2::handshake(TokioExecutor::new(), io).await?;
                tokio::spawn(connection);
                let origin = format!("https://{addr}");
                Sender::Http2 { sender, origin }
            }
        };
        Ok(Conn { sender })
    }

    /// Sends `call` and waits for the answer's head; a status but 200 is an error.
    pub async fn start(&mut self, call: &Call) -> anyhow::Result<Answer> {
        let sent = Instant::now();
        let request = Request::builder().method(call.method.clone());
        let request = match &self.sender {
            Sender::Http1 { host, .. } => request
                .uri(&call.path)
                .header(hyper::header::HOST, host.clone()),
            Sender::Http2 { origin, .. } => request.uri(format!("{origin}{}", call.path)),
        };
        let mut request = request.body(Full::new(call.body.clone()))?;
        request.headers_mut().extend(call.headers.iter().cloned());
        let response = match &mut self.sender {
            Sender::Http1 { sender, .. } => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
            Sender::Http2 { sender, .. } => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
        };
        if response.status() != StatusCode::OK {
            let status = response.status();
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            let body = body.unwrap_or_default();
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            bail!("{} {}: {status} {text}", call.method, call.path);
        }
        Ok(Answer {
            sent,
            response,
            stream: call.stream,
        })
    }

    /// Sends `call` and reads its answer to the end.
    pub async fn send(&mut self, call: &Call) -> anyhow::Result<Timing> {
        self.start(call).await?.finish().await
    }
}

/// An answer whose head has arrived.
pub struct Answer {
    sent: Instant,
    response: Response<Incoming>,
    stream: bool,
}

impl Answer {
    /// Reads the body to its end.
    pub async fn finish(self) -> anyhow::Result<Timing> {
        let mut body = self.response.into_body();
        let mut first_byte = None;
        let mut token = Watch::new(FIRST_TOKEN);
        let mut completed = Watch::new(COMPLETED);
        let mut first_token = None;
        let mut bytes = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.context("reading the body")?;
            let Some(data) = frame.data_ref().filter(|d| !d.is_empty()) else {
                continue;
            };
            let at = self.sent.elapsed();
            first_byte.get_or_insert(at);
            bytes += data.len() as u64;
            if self.stream {
                if first_token.is_none() && token.feed(data) {
                    first_token = Some(at);
                }
                completed.feed(data);
            }
        }
        if self.stream && !completed.found {
            bail!("the stream ended without response.completed");
        }
        Ok(Timing {
            total: self.sent.elapsed(),
            first_byte,
            first_token,
            bytes,
        })
    }
}

/// Looks for a marker in a body that arrives in pieces, across piece boundaries.
struct Watch {
    finder: Finder<'static>,
    tail: Vec<u8>,
    found: bool,
}

impl Watch {
    fn new(marker: &'static [u8]) -> Watch {
        Watch {
            finder: Finder::new(marker),
            tail: Vec::with_capacity(marker.len() * 2),
            found: false,
        }
    }

    /// True the first time the marker is seen.
    fn feed(&mut self, piece: &[u8]) -> bool {
        if self.found {
            return false;
        }
        let keep = self.finder.needle().len() - 1;
        // The marker may straddle: the end of what came before, then this piece's start.
        self.tail.extend_from_slice(&piece[..piece.len().min(keep)]);
        if self.finder.find(&self.tail).is_some() || self.finder.find(piece).is_some() {
            self.found = true;
            return true;
        }
        if piece.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&piece[piece.len() - keep..]);
        } else {
            let excess = self.tail.len().saturating_sub(keep);
            self.tail.drain(..excess);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_found_across_pieces_of_any_size() {
        let body = b"event: response.created\ndata: {}\n\nevent: response.completed\ndata: {}\n\n";
        for size in 1..body.len() {
            let mut watch = Watch::new(COMPLETED);
            let hits = body.chunks(size).filter(|piece| watch.feed(piece)).count();
            assert_eq!(hits, 1, "pieces of {size}");
        }
        let mut watch = Watch::new(FIRST_TOKEN);
        assert!(!body.chunks(3).any(|piece| watch.feed(piece)));
    }
}
