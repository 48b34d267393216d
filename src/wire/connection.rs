//! An accepted connection as actix-http's HTTP/1 dispatcher sees it: reads pass through, and a
//! write that is exactly one of the dispatcher's own refusals ([`refusal::shaped`]) goes out
//! with its OpenAI error body instead. Everything else passes through unchanged, byte for byte.
//!
//! Why this can never touch a legitimate answer. The dispatcher fills a write buffer with whole
//! encoded pieces (a response head, a body chunk, `100 Continue`) and hands it to `poll_write`
//! from its start, again and again from where the last call stopped, until the socket took it
//! all (`InnerDispatcher::poll_flush`; it never writes vectored). So a write starts a buffer,
//! and with it a whole piece, exactly when it is the first or the previous write took all it was
//! offered. Only such a write is looked at, and it is rewritten only if all its bytes are exactly
//! a bare refusal head. Such a write begins with one of:
//! - a response head from the relay's services: never bare, as every one carries
//!   `x-relay-request-id` (`http::context`) and every error a JSON body (`http::bare_errors`);
//! - `HTTP/1.1 100 Continue`, or a chunk of a streamed body, which starts with its size in hex;
//! - a fixed-length body, always JSON (and written in the buffer of its head): a JSON text
//!   cannot hold a refusal head, whose reason phrase (`Bad Request`) would have to be tokens
//!   outside a string, where letters only spell `true`, `false` and `null`, while a string
//!   cannot hold the raw CR after it;
//! - a body without framing, which actix-http writes only when streaming an answer to an
//!   `Upgrade: websocket` or `CONNECT` request; the relay's one streamed answer needs a request
//!   body that such a request cannot finish sending (it is the rest of the connection), and even
//!   then it would take the upstream itself sending the exact bytes of a refusal as one write.
//!
//! Limit: a refusal that shares a write with an answer before it (a client pipelining a bad
//! request behind others, so both are encoded in one buffer) is not looked at, and goes out bare.
//!
//! A rewrite is written out whole before the dispatcher is told its own bytes were written: it
//! drops the connection right after a refusal, so nothing may be left for later.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::refusal;

/// A connection whose dispatcher refusals go out OpenAI-shaped.
pub struct Connection<T> {
    io: T,
    /// The next write starts a buffer the dispatcher has just filled: the previous write took
    /// all it was offered, or nothing was written yet.
    at_buffer_start: bool,
    /// A refusal being rewritten; once sent (by a flush or shutdown, if not by the write), kept
    /// until the write that offered the refusal is retried and told it went out.
    rewrite: Option<Rewrite>,
}

/// A refusal being written in its OpenAI shape.
struct Rewrite {
    bytes: Vec<u8>,
    sent: usize,
    /// How many of the dispatcher's bytes it stands for: reported written once all is sent.
    stands_for: usize,
}

impl<T> Connection<T> {
    pub fn new(io: T) -> Connection<T> {
        Connection {
            io,
            at_buffer_start: true,
            rewrite: None,
        }
    }
}

impl<T: AsyncWrite + Unpin> Connection<T> {
    /// Writes what is left of a rewrite; ready once all of it is sent (at once without one).
    fn poll_rewrite(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(rewrite) = self.rewrite.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        while rewrite.sent < rewrite.bytes.len() {
            let rest = &rewrite.bytes[rewrite.sent..];
            match ready!(Pin::new(&mut self.io).poll_write(cx, rest))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => rewrite.sent += n,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Writes `buf`, the first `buf.len()` of the `offered` bytes the caller asked to write.
    fn write(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
        offered: usize,
    ) -> Poll<io::Result<usize>> {
        if self.rewrite.is_none() && self.at_buffer_start && buf.len() == offered {
            self.rewrite = refusal::shaped(buf).map(|bytes| Rewrite {
                bytes,
                sent: 0,
                stands_for: buf.len(),
            });
        }
        let written = match self.rewrite {
            Some(_) => {
                ready!(self.poll_rewrite(cx))?;
                self.rewrite
                    .take()
                    .map_or(0, |rewrite| rewrite.stands_for.min(buf.len()))
            }
            None => ready!(Pin::new(&mut self.io).poll_write(cx, buf))?,
        };
        self.at_buffer_start = written == offered;
        Poll::Ready(Ok(written))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Connection<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write(cx, buf, buf.len())
    }

    /// The first slice that is not empty, as a plain write would (the dispatcher never writes
    /// vectored); the rest counts as not yet written.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let offered = bufs.iter().map(|buf| buf.len()).sum();
        let first = bufs
            .iter()
            .find(|buf| !buf.is_empty())
            .map_or(&[][..], |buf| &buf[..]);
        self.get_mut().write(cx, first, offered)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_rewrite(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_rewrite(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Connection<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests;
