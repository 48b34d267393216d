//! A raw HTTP/1.1 client over TCP, for what awc will not send — a malformed request line, a
//! head too large, a request that stops half-way — and for reading an answer exactly as the
//! server wrote it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// An answer as it came off the wire.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The error object of an OpenAI-shaped JSON body; panics, showing the answer, otherwise.
    pub fn error(&self) -> Value {
        let json = self
            .header("content-type")
            .is_some_and(|v| v.starts_with("application/json"));
        let body: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        let error = &body["error"];
        let shaped = ["message", "type", "param", "code"]
            .iter()
            .all(|field| error.get(field).is_some());
        assert!(json && shaped, "not an OpenAI error: {self:?} {body}");
        error.clone()
    }
}

/// A connection that has sent `bytes` — typically a head and part of its body — and sends
/// nothing more until it is dropped.
pub struct Stalled(TcpStream);

impl Stalled {
    pub fn open(addr: SocketAddr, bytes: &[u8]) -> Stalled {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.write_all(bytes).expect("send");
        Stalled(stream)
    }

    /// The answer, if one arrives within `within`.
    pub async fn answer(self, within: Duration) -> Option<RawAnswer> {
        let Stalled(stream) = self;
        actix_web::rt::task::spawn_blocking(move || Received::on(stream, within).answer())
            .await
            .expect("reader thread")
    }

    /// The answer, if one arrives within `within`, and whether the server then ended the
    /// connection with nothing after the answer.
    pub async fn answer_then_end(self, within: Duration) -> Option<(RawAnswer, bool)> {
        let Stalled(stream) = self;
        actix_web::rt::task::spawn_blocking(move || {
            let mut received = Received::on(stream, within);
            let answer = received.answer()?;
            Some((answer, received.ends()))
        })
        .await
        .expect("reader thread")
    }
}

/// Sends `bytes` on a new connection and reads the one answer (within 10 s).
pub async fn exchange(addr: SocketAddr, bytes: impl AsRef<[u8]>) -> RawAnswer {
    let stalled = Stalled::open(addr, bytes.as_ref());
    stalled
        .answer(Duration::from_secs(10))
        .await
        .expect("an answer within 10 s")
}

/// Sends each request on one connection once the answer to the one before has arrived; the
/// answers (each within 10 s), and whether the server then ended the connection.
pub async fn converse(addr: SocketAddr, requests: Vec<Vec<u8>>) -> (Vec<RawAnswer>, bool) {
    actix_web::rt::task::spawn_blocking(move || {
        let stream = TcpStream::connect(addr).expect("connect");
        let mut received = Received::on(stream, Duration::from_secs(10));
        let answers = requests
            .iter()
            .map(|request| {
                received.stream.write_all(request).expect("send");
                received.answer().expect("an answer within 10 s")
            })
            .collect();
        (answers, received.ends())
    })
    .await
    .expect("reader thread")
}

/// What has arrived on a connection and not been read as an answer yet.
struct Received {
    stream: TcpStream,
    bytes: Vec<u8>,
}

impl Received {
    fn on(stream: TcpStream, within: Duration) -> Received {
        stream.set_read_timeout(Some(within)).expect("read timeout");
        Received {
            stream,
            bytes: Vec::new(),
        }
    }

    /// Reads one answer: its head, then as many body bytes as its `content-length` says.
    fn answer(&mut self) -> Option<RawAnswer> {
        loop {
            if let Some((answer, length)) = parse(&self.bytes) {
                self.bytes.drain(..length);
                return Some(answer);
            }
            if !self.read_more().ok()? {
                return parse(&self.bytes).map(|(answer, _)| answer);
            }
        }
    }

    /// Whether the connection ends (closed or reset) with nothing more on it.
    fn ends(&mut self) -> bool {
        loop {
            match self.read_more() {
                Ok(true) => {}
                Ok(false) => return self.bytes.is_empty(),
                Err(error) => {
                    return error.kind() == std::io::ErrorKind::ConnectionReset
                        && self.bytes.is_empty()
                }
            }
        }
    }

    /// Reads what arrives next; false at the end of the connection.
    fn read_more(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let read = self.stream.read(&mut chunk)?;
        self.bytes.extend_from_slice(&chunk[..read]);
        Ok(read > 0)
    }
}

/// The first answer in `received` and its length, once all of it is there.
fn parse(received: &[u8]) -> Option<(RawAnswer, usize)> {
    let end = received.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&received[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let body = received.get(end + 4..end + 4 + length)?.to_vec();
    let answer = RawAnswer {
        status,
        headers,
        body,
    };
    Some((answer, end + 4 + length))
}

/// A request head for `method path` with these extra header lines (each ending in `\r\n`).
pub fn head(method: &str, path: &str, headers: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nhost: relay\r\n{headers}\r\n")
}
