//! Reading a request body into one buffer of its own size.
//!
//! actix-web's `Bytes` extractor starts every body in an 8 KB buffer and doubles it as chunks
//! arrive, so a 1.7 KB request holds 8 KB and a 100 KB conversation 128 KB (after copying itself
//! four times on the way); the body is then kept, whole, until the call upstream has started.
//! Here the buffer is sized from `Content-Length` up front (bounded by the limit), so a body costs
//! its own size once. Compressed bodies (`Content-Encoding`, e.g. the Codex CLI's zstd) are
//! decoded exactly as the extractor does, and the limit applies to the decoded size.

use actix_web::dev::{Decompress, Payload};
use actix_web::error::PayloadError;
use actix_web::http::header::{HeaderMap, CONTENT_LENGTH};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

/// A buffer for a body of unknown size starts here, and grows as the extractor's would.
const UNKNOWN_LENGTH_START: usize = 8 * 1024;

/// The whole body, decoded; `PayloadError::Overflow` past `limit` bytes.
pub async fn read(
    headers: &HeaderMap,
    payload: Payload,
    limit: usize,
) -> Result<Bytes, PayloadError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(PayloadError::Overflow);
    }
    // A compressed body decodes to more than it declares: its length is only where to start.
    let start = declared.unwrap_or(UNKNOWN_LENGTH_START).min(limit);
    let mut buffer = BytesMut::with_capacity(start);
    let mut stream = Decompress::from_headers(payload, headers);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if buffer.len() + chunk.len() > limit {
            return Err(PayloadError::Overflow);
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderValue, CONTENT_ENCODING};

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let name = actix_web::http::header::HeaderName::from_static(name);
            map.insert(name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[actix_web::test]
    async fn a_body_is_read_into_a_buffer_of_its_declared_size() {
        let sent = Bytes::from(vec![b'x'; 1700]);
        let declared = headers(&[("content-length", "1700")]);
        let body = read(&declared, Payload::from(sent.clone()), 4096)
            .await
            .unwrap();
        assert_eq!(body, sent);
        // The buffer was allocated once, at its size: turning it into a Vec needs no copy.
        let pointer = body.as_ptr();
        let vec = Vec::from(body);
        assert_eq!((vec.as_ptr(), vec.capacity()), (pointer, 1700));
    }

    #[actix_web::test]
    async fn the_limit_holds_whether_declared_or_only_counted() {
        let big = Bytes::from(vec![b'x'; 5000]);
        let declared = headers(&[("content-length", "5000")]);
        let error = read(&declared, Payload::from(big.clone()), 4096).await;
        assert!(matches!(error, Err(PayloadError::Overflow)));
        let undeclared = read(&HeaderMap::new(), Payload::from(big), 4096).await;
        assert!(matches!(undeclared, Err(PayloadError::Overflow)));
        let fits = read(&HeaderMap::new(), Payload::from(vec![b'y'; 4096]), 4096).await;
        assert_eq!(fits.unwrap().len(), 4096);
    }

    #[actix_web::test]
    async fn a_compressed_body_is_decoded_and_limited_by_its_decoded_size() {
        let plain = vec![b'z'; 100_000];
        let compressed = zstd::encode_all(&plain[..], 3).unwrap();
        let length = compressed.len().to_string();
        let sent = headers(&[("content-length", &length), ("content-encoding", "zstd")]);
        assert!(sent.contains_key(CONTENT_ENCODING));
        let body = read(&sent, Payload::from(compressed.clone()), 200_000).await;
        assert_eq!(body.unwrap(), plain);
        // Small on the wire, too large once decoded: refused, however well it compresses.
        let bomb = read(&sent, Payload::from(compressed), 50_000).await;
        assert!(matches!(bomb, Err(PayloadError::Overflow)));
    }
}
