//! The connection adapter driven the way actix-http's dispatcher drives it: each buffer written
//! from its start, again from where the last write stopped, until the socket took all of it.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::task::noop_waker_ref;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Connection;
use crate::wire::refusal;

/// A socket that takes at most a set number of bytes per write, and first says it is busy
/// before each write when asked to.
struct Socket {
    received: Vec<u8>,
    /// How many bytes each write takes, in turn; the last applies to all writes after.
    takes: Vec<usize>,
    writes: usize,
    busy_first: bool,
    busy_now: bool,
    shut: bool,
}

impl Socket {
    fn taking(takes: &[usize], busy_first: bool) -> Socket {
        Socket {
            received: Vec::new(),
            takes: takes.to_vec(),
            writes: 0,
            busy_first,
            busy_now: busy_first,
            shut: false,
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.busy_now {
            this.busy_now = false;
            return Poll::Pending;
        }
        this.busy_now = this.busy_first;
        let take = this.takes[this.writes.min(this.takes.len() - 1)].clamp(1, buf.len());
        this.writes += 1;
        this.received.extend_from_slice(&buf[..take]);
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().shut = true;
        Poll::Ready(Ok(()))
    }
}

/// Writes each buffer as the dispatcher does (`InnerDispatcher::poll_flush`), checking that the
/// adapter reports exactly the buffer's bytes as written; then flushes.
fn dispatch(connection: &mut Connection<Socket>, buffers: &[&[u8]]) {
    let mut cx = Context::from_waker(noop_waker_ref());
    for buffer in buffers {
        let mut written = 0;
        while written < buffer.len() {
            match Pin::new(&mut *connection).poll_write(&mut cx, &buffer[written..]) {
                Poll::Ready(Ok(n)) => {
                    assert!(n > 0 && written + n <= buffer.len());
                    written += n;
                }
                Poll::Ready(Err(error)) => panic!("write failed: {error}"),
                Poll::Pending => {}
            }
        }
        while Pin::new(&mut *connection).poll_flush(&mut cx).is_pending() {}
    }
}

/// What reaches the socket when `buffers` are written, the socket taking `takes` bytes per write.
fn sent(buffers: &[&[u8]], takes: &[usize], busy_first: bool) -> Vec<u8> {
    let mut connection = Connection::new(Socket::taking(takes, busy_first));
    dispatch(&mut connection, buffers);
    connection.io.received
}

const DATE: &str = "date: Sun, 06 Nov 1994 08:49:37 GMT\r\n";

fn refusal_head(status_line: &str, connection: &str) -> Vec<u8> {
    format!("{status_line}\r\ncontent-length: 0\r\n{connection}{DATE}\r\n").into_bytes()
}

fn bad_request() -> Vec<u8> {
    refusal_head("HTTP/1.1 400 Bad Request", "connection: close\r\n")
}

fn json_answer(status_line: &str, body: &str) -> Vec<u8> {
    format!(
        "{status_line}\r\ncontent-length: {}\r\ncontent-type: application/json\r\n\
         x-relay-request-id: req_1\r\nx-request-id: req_1\r\n{DATE}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An SSE answer as the dispatcher writes it: the head with the held-back start, then each
/// upstream piece as a chunk, then the last chunk.
fn sse_answer(events: &[&str]) -> Vec<Vec<u8>> {
    let head = format!(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\
         x-relay-request-id: req_2\r\n{DATE}\r\n"
    );
    let chunk = |data: &str| format!("{:x}\r\n{data}\r\n", data.len()).into_bytes();
    let mut buffers = vec![[head.into_bytes(), chunk(events[0])].concat()];
    buffers.extend(events[1..].iter().map(|event| chunk(event)));
    buffers.push(b"0\r\n\r\n".to_vec());
    buffers
}

/// A keep-alive connection's answers: JSON, the relay's own JSON error, a stream.
fn kept_alive_answers() -> Vec<Vec<u8>> {
    let mut buffers = vec![
        json_answer("HTTP/1.1 200 OK", r#"{"object":"list","data":[]}"#),
        json_answer(
            "HTTP/1.1 400 Bad Request",
            r#"{"error":{"message":"Bad Request.","type":"invalid_request_error","param":null,"code":"bad_request"}}"#,
        ),
    ];
    buffers.extend(sse_answer(&[
        "event: response.created\ndata: {\"type\":\"response.created\"}\n\n",
        ": keep-alive\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\"}\n\n",
    ]));
    buffers
}

fn slices(buffers: &[Vec<u8>]) -> Vec<&[u8]> {
    buffers.iter().map(Vec::as_slice).collect()
}

#[test]
fn a_refusal_goes_out_shaped_however_the_socket_takes_it() {
    let refusal = bad_request();
    let shaped = refusal::shaped(&refusal).unwrap();
    for take in 1..=shaped.len() {
        for busy_first in [false, true] {
            let out = sent(&[&refusal], &[take], busy_first);
            assert_eq!(out, shaped, "taking {take} bytes a write");
        }
    }
}

#[test]
fn answers_on_a_kept_alive_connection_pass_unchanged_and_a_refusal_after_them_is_shaped() {
    let answers = kept_alive_answers();
    let refusal = refusal_head("HTTP/1.1 400 Bad Request", "");
    let mut buffers = slices(&answers);
    buffers.push(&refusal);
    let expected = [answers.concat(), refusal::shaped(&refusal).unwrap()].concat();
    for take in [1, 2, 7, 64, 100_000] {
        assert_eq!(sent(&buffers, &[take], true), expected, "taking {take}");
    }
}

#[test]
fn a_write_split_at_any_byte_passes_unchanged() {
    let answers = kept_alive_answers();
    let whole = answers.concat();
    for take in 1..whole.len() {
        // The socket takes `take` bytes of the first buffer only: every later write of it starts
        // in the middle.
        let out = sent(&[&whole], &[take, usize::MAX], false);
        assert_eq!(out, whole, "split after {take} bytes");
    }
}

/// A chunk whose data ends with a refusal's bytes (as only an upstream could send): when the
/// socket takes the chunk up to exactly those bytes, the write that starts with them starts in
/// the middle of a buffer, and is not touched.
#[test]
fn a_body_holding_a_refusals_bytes_passes_unchanged_even_when_a_write_starts_with_them() {
    let refusal = bad_request();
    let data = &refusal[..refusal.len() - 2];
    let chunk = [format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"].concat();
    assert!(chunk.ends_with(&refusal));
    let before = chunk.len() - refusal.len();
    let out = sent(&[&chunk], &[before, usize::MAX], false);
    assert_eq!(out, chunk);
    // Behind a response in the same buffer (a pipelining client), it goes out as it is.
    let pipelined = [json_answer("HTTP/1.1 200 OK", "{}"), refusal.clone()].concat();
    let first = pipelined.len() - refusal.len();
    assert_eq!(sent(&[&pipelined], &[first, usize::MAX], true), pipelined);
}

#[test]
fn a_rewrite_is_sent_whole_before_the_connection_shuts() {
    let refusal = bad_request();
    let shaped = refusal::shaped(&refusal).unwrap();
    let mut connection = Connection::new(Socket::taking(&[10], true));
    let mut cx = Context::from_waker(noop_waker_ref());
    // The first write finds the socket busy: the dispatcher is told nothing was written yet.
    let first = Pin::new(&mut connection).poll_write(&mut cx, &refusal);
    assert!(first.is_pending());
    loop {
        if let Poll::Ready(done) = Pin::new(&mut connection).poll_shutdown(&mut cx) {
            done.unwrap();
            break;
        }
    }
    assert_eq!(connection.io.received, shaped);
    assert!(connection.io.shut);
    // A later retry of the same write is told it went out, and sends nothing more.
    let retry = Pin::new(&mut connection).poll_write(&mut cx, &refusal);
    assert!(matches!(retry, Poll::Ready(Ok(n)) if n == refusal.len()));
    assert_eq!(connection.io.received, shaped);
}

#[test]
fn vectored_writes_and_reads_pass_through() {
    let answer = json_answer("HTTP/1.1 200 OK", "{}");
    let (head, body) = answer.split_at(20);
    let mut connection = Connection::new(Socket::taking(&[usize::MAX], false));
    let mut cx = Context::from_waker(noop_waker_ref());
    let mut written = 0;
    while written < answer.len() {
        let rest = &answer[written..];
        let parts = match written {
            0 => vec![IoSlice::new(head), IoSlice::new(body)],
            _ => vec![IoSlice::new(rest)],
        };
        if let Poll::Ready(n) = Pin::new(&mut connection).poll_write_vectored(&mut cx, &parts) {
            written += n.unwrap();
        }
    }
    assert_eq!(connection.io.received, answer);

    let mut reader = Connection::new(&b"GET /healthz HTTP/1.1\r\n\r\n"[..]);
    let mut storage = [0u8; 64];
    let mut buf = ReadBuf::new(&mut storage);
    let read = Pin::new(&mut reader).poll_read(&mut cx, &mut buf);
    assert!(matches!(read, Poll::Ready(Ok(()))));
    assert_eq!(buf.filled(), b"GET /healthz HTTP/1.1\r\n\r\n");
}
