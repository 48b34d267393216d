//! Reading a request body, on both planes, within its limits: at most `max_bytes` once decoded,
//! arrived within `deadline`, in one of the encodings clients send (`decode.rs`).
//!
//! The relay decodes bodies itself rather than through actix-web, whose decoder inflates a
//! whole network chunk before any limit is looked at (a 66 KB zstd body became 3 GB). Here a
//! body being read holds at most: its buffer (never past `max_bytes`), one decoder output block
//! ([`OUTPUT_BLOCK`], 32 KiB), and the decoder's window (32 KiB for gzip and deflate, at most
//! 8 MiB for zstd). The buffer starts at the declared `Content-Length` (bounded by the limit),
//! so an uncompressed body costs its own size once.

mod decode;

use std::future::Future;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header::{HeaderMap, CONTENT_LENGTH};
use actix_web::http::StatusCode;
use actix_web::web;
use bytes::Bytes;
use futures_util::StreamExt;

use self::decode::{BoundedBuffer, Decoder};
pub use self::decode::{Encoding, OUTPUT_BLOCK, ZSTD_WINDOW_LOG_MAX};

/// A buffer for a body of unknown size starts here.
const UNKNOWN_LENGTH_START: usize = 8 * 1024;

/// Chunks of compressed input at least this large are decoded on a blocking thread, so that a
/// large body does not stall the other requests of the worker (actix-web's own threshold).
const DECODE_IN_PLACE_BELOW: usize = 2049;

/// What one plane accepts as a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// The largest body, decoded.
    pub max_bytes: usize,
    /// How long the whole body may take to arrive, from the moment the relay reads it.
    pub deadline: Duration,
}

/// Why a body was not read. Its message is safe to show the client (no byte of the body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    #[error("Request body is too large: the limit is {limit} bytes.")]
    TooLarge { limit: usize },
    #[error("Unsupported Content-Encoding: send the body as identity, gzip, deflate or zstd (exactly one).")]
    UnsupportedEncoding,
    #[error("The request body could not be decoded as its Content-Encoding says.")]
    Corrupt,
    #[error("The request body did not arrive within {} seconds.", .0.as_secs_f32())]
    TimedOut(Duration),
    #[error("The request body could not be read.")]
    Broken,
    /// Memory for the body, or a thread to decode it on, could not be had.
    #[error("The relay is overloaded. Try again shortly.")]
    Overloaded,
}

impl IntakeError {
    pub fn status(&self) -> StatusCode {
        match self {
            IntakeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IntakeError::UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IntakeError::Corrupt | IntakeError::Broken => StatusCode::BAD_REQUEST,
            IntakeError::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            IntakeError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The OpenAI error `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            IntakeError::Overloaded => "service_unavailable",
            _ => "invalid_request_error",
        }
    }

    /// The OpenAI error `code`.
    pub fn code(&self) -> &'static str {
        match self {
            IntakeError::TooLarge { .. } => "request_too_large",
            IntakeError::UnsupportedEncoding => "unsupported_content_encoding",
            IntakeError::Corrupt => "invalid_content_encoding",
            IntakeError::TimedOut(_) => "request_timeout",
            IntakeError::Broken => "invalid_body",
            IntakeError::Overloaded => "overloaded",
        }
    }
}

/// The whole body, decoded, or why not. What it needs of the headers is read at once, so the
/// future borrows nothing of the request.
pub fn read_body(
    headers: &HeaderMap,
    payload: Payload,
    limits: BodyLimits,
) -> impl Future<Output = Result<Bytes, IntakeError>> + 'static {
    let encoding = Encoding::of(headers);
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    async move {
        let read = read(encoding?, declared, payload, limits.max_bytes);
        actix_web::rt::time::timeout(limits.deadline, read)
            .await
            .map_err(|_elapsed| IntakeError::TimedOut(limits.deadline))?
    }
}

async fn read(
    encoding: Encoding,
    declared: Option<usize>,
    mut payload: Payload,
    limit: usize,
) -> Result<Bytes, IntakeError> {
    // A compressed body is larger decoded than sent: its length is only where to start.
    if declared.is_some_and(|length| length > limit) {
        return Err(IntakeError::TooLarge { limit });
    }
    let start = declared.unwrap_or(UNKNOWN_LENGTH_START);
    let mut decoder = Decoder::new(encoding, BoundedBuffer::new(start, limit)?)?;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_: PayloadError| IntakeError::Broken)?;
        decoder = feed(decoder, chunk).await?;
    }
    decoder.finish()
}

/// Feeds one chunk to the decoder: in place when it is a copy or a small decode, else on a
/// blocking thread.
async fn feed(mut decoder: Decoder, chunk: Bytes) -> Result<Decoder, IntakeError> {
    if !decoder.decodes() || chunk.len() < DECODE_IN_PLACE_BELOW {
        decoder.feed(&chunk)?;
        return Ok(decoder);
    }
    let decoded = web::block(move || decoder.feed(&chunk).map(|()| decoder)).await;
    decoded.map_err(|_blocking| IntakeError::Overloaded)?
}

#[cfg(test)]
mod tests;
