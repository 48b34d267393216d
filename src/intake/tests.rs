use std::io::Write;

use actix_web::http::header::{HeaderName, HeaderValue};
use futures_util::stream;

use super::decode::{BoundedBuffer, Decoder};
use super::*;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_static(name);
        map.append(name, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn limits(max_bytes: usize) -> BodyLimits {
    BodyLimits {
        max_bytes,
        deadline: Duration::from_secs(5),
    }
}

/// A body that arrives as these chunks, then ends.
fn chunked(chunks: Vec<Result<Bytes, PayloadError>>) -> Payload {
    Payload::from(stream::iter(chunks).boxed_local())
}

fn gzip(plain: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(plain).unwrap();
    encoder.finish().unwrap()
}

fn deflate(plain: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(plain).unwrap();
    encoder.finish().unwrap()
}

fn zstd(plain: &[u8]) -> Vec<u8> {
    zstd::encode_all(plain, 3).unwrap()
}

/// `plain` in each supported coding, with the name a client sends it under.
fn encoded(plain: &[u8]) -> [(&'static str, Vec<u8>); 4] {
    [
        ("identity", plain.to_vec()),
        ("gzip", gzip(plain)),
        ("deflate", deflate(plain)),
        ("zstd", zstd(plain)),
    ]
}

async fn read_as(encoding: &str, body: Vec<u8>, limit: usize) -> Result<Bytes, IntakeError> {
    let sent = headers(&[("content-encoding", encoding)]);
    read_body(&sent, Payload::from(body), limits(limit)).await
}

#[actix_web::test]
async fn a_body_is_read_into_a_buffer_of_its_declared_size() {
    let sent = Bytes::from(vec![b'x'; 1700]);
    let declared = headers(&[("content-length", "1700")]);
    let body = read_body(&declared, Payload::from(sent.clone()), limits(4096))
        .await
        .unwrap();
    assert_eq!(body, sent);
    // The buffer was allocated once, at its size: turning it into a Vec needs no copy.
    let pointer = body.as_ptr();
    let vec = Vec::from(body);
    assert_eq!((vec.as_ptr(), vec.capacity()), (pointer, 1700));
}

#[actix_web::test]
async fn a_body_of_unknown_length_or_compressed_ends_in_a_buffer_of_about_its_length() {
    let plain: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
    // `identity` here declares no length.
    for (encoding, body) in encoded(&plain) {
        let read = read_as(encoding, body, 1 << 20).await.unwrap();
        assert_eq!(read, plain, "{encoding}");
        // Grown by doubling from its start, the buffer would be up to twice the body.
        let capacity = Vec::from(read).capacity();
        assert!(
            capacity <= plain.len() + plain.len() / 8,
            "{encoding}: {capacity} bytes held for {}",
            plain.len()
        );
    }
}

#[actix_web::test]
async fn the_limit_holds_whether_declared_or_only_counted() {
    let big = Bytes::from(vec![b'x'; 5000]);
    let declared = headers(&[("content-length", "5000")]);
    let too_large = Err(IntakeError::TooLarge { limit: 4096 });
    let error = read_body(&declared, Payload::from(big.clone()), limits(4096)).await;
    assert_eq!(error, too_large);
    let undeclared = read_body(&HeaderMap::new(), Payload::from(big), limits(4096)).await;
    assert_eq!(undeclared, too_large);
    let fits = read_body(
        &HeaderMap::new(),
        Payload::from(vec![b'y'; 4096]),
        limits(4096),
    )
    .await;
    assert_eq!(fits.unwrap().len(), 4096);
}

#[actix_web::test]
async fn every_coding_clients_send_is_decoded_whatever_its_case_and_chunking() {
    let plain: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
    for (encoding, body) in encoded(&plain) {
        let whole = read_as(encoding, body.clone(), 1 << 20).await;
        assert_eq!(whole.as_deref(), Ok(&plain[..]), "{encoding}");
        let shouted = format!(" {} ", encoding.to_uppercase());
        let shouted = read_as(&shouted, body.clone(), 1 << 20).await;
        assert_eq!(shouted.as_deref(), Ok(&plain[..]), "{encoding}");
        // Network chunks of every size, small ones decoded in place, large ones off the worker.
        let (mut chunks, mut rest, mut small) = (Vec::new(), &body[..], true);
        while !rest.is_empty() {
            let (chunk, after) = rest.split_at(rest.len().min(if small { 100 } else { 3000 }));
            chunks.push(Ok(Bytes::copy_from_slice(chunk)));
            (rest, small) = (after, !small);
        }
        let sent = headers(&[("content-encoding", encoding)]);
        let pieces = read_body(&sent, chunked(chunks), limits(1 << 20)).await;
        assert_eq!(pieces.as_deref(), Ok(&plain[..]), "{encoding} in chunks");
    }
}

#[actix_web::test]
async fn concatenated_gzip_members_and_zstd_frames_are_one_body() {
    let (first, second) = (b"{\"model\":".as_slice(), b"\"gpt-5.5\"}".as_slice());
    let members = [gzip(first), gzip(second)].concat();
    assert_eq!(
        read_as("gzip", members, 1024).await.unwrap(),
        [first, second].concat()
    );
    let frames = [zstd(first), zstd(second)].concat();
    assert_eq!(
        read_as("zstd", frames, 1024).await.unwrap(),
        [first, second].concat()
    );
}

#[actix_web::test]
async fn codings_not_supported_are_refused_not_passed_on() {
    let body = || Payload::from(gzip(b"{}"));
    for encoding in ["br", "gzip, zstd", "x-gzip", "compress", "", "zstd;q=1"] {
        let sent = headers(&[("content-encoding", encoding)]);
        let refused = read_body(&sent, body(), limits(1024)).await;
        assert_eq!(
            refused,
            Err(IntakeError::UnsupportedEncoding),
            "{encoding:?}"
        );
    }
    let twice = headers(&[("content-encoding", "gzip"), ("content-encoding", "gzip")]);
    let refused = read_body(&twice, body(), limits(1024)).await;
    assert_eq!(refused, Err(IntakeError::UnsupportedEncoding));
}

#[actix_web::test]
async fn corrupt_or_truncated_compressed_bodies_are_refused() {
    let plain = vec![b'a'; 10_000];
    for (encoding, body) in encoded(&plain).into_iter().skip(1) {
        let garbage = read_as(encoding, b"definitely not compressed".to_vec(), 1 << 20);
        assert_eq!(garbage.await, Err(IntakeError::Corrupt), "{encoding}");
        let cut = body[..body.len() - 4].to_vec();
        assert_eq!(
            read_as(encoding, cut, 1 << 20).await,
            Err(IntakeError::Corrupt),
            "{encoding}"
        );
    }
}

#[actix_web::test]
async fn a_broken_connection_is_not_a_body() {
    let chunks = vec![
        Ok(Bytes::from_static(b"{\"mo")),
        Err(PayloadError::Incomplete(None)),
    ];
    let broken = read_body(&HeaderMap::new(), chunked(chunks), limits(1024)).await;
    assert_eq!(broken, Err(IntakeError::Broken));
}

#[actix_web::test]
async fn a_body_that_stops_arriving_times_out() {
    let stalled = Payload::from(
        stream::iter([Ok(Bytes::from_static(b"{\"model\""))])
            .chain(stream::pending())
            .boxed_local(),
    );
    let deadline = Duration::from_millis(50);
    let limits = BodyLimits {
        max_bytes: 1024,
        deadline,
    };
    let started = std::time::Instant::now();
    let timed_out = read_body(&HeaderMap::new(), stalled, limits).await;
    assert_eq!(timed_out, Err(IntakeError::TimedOut(deadline)));
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A decompression bomb in each coding: 8 MiB of zeros, a few KB on the wire, sent as one
/// network chunk — what actix-web's decoder inflated whole before looking at any limit.
#[test]
fn a_bomb_is_refused_holding_no_more_than_the_limit_and_one_output_block() {
    let limit = 64 * 1024;
    let plain = vec![0u8; 8 << 20];
    for (encoding, bomb) in encoded(&plain).into_iter().skip(1) {
        assert!(bomb.len() < 64 * 1024, "{encoding}: {}", bomb.len());
        let sent = headers(&[("content-encoding", encoding)]);
        let buffer = BoundedBuffer::new(bomb.len(), limit).unwrap();
        let mut decoder = Decoder::new(Encoding::of(&sent).unwrap(), buffer).unwrap();
        let refused = decoder.feed(&bomb);
        assert_eq!(refused, Err(IntakeError::TooLarge { limit }), "{encoding}");
        let buffer = decoder.buffer();
        assert!(
            buffer.capacity() <= limit,
            "{encoding}: {}",
            buffer.capacity()
        );
        assert!(
            buffer.largest_block() <= OUTPUT_BLOCK,
            "{encoding}: {}",
            buffer.largest_block()
        );
    }
}

#[test]
fn the_buffer_grows_by_doubling_but_never_past_its_limit() {
    let mut buffer = BoundedBuffer::new(1000, 3000).unwrap();
    buffer.write_all(&[1; 1000]).unwrap();
    buffer.write_all(&[2; 1]).unwrap();
    assert_eq!(buffer.capacity(), 2000);
    buffer.write_all(&[3; 1500]).unwrap();
    assert_eq!(buffer.capacity(), 3000);
    buffer.write_all(&[4; 499]).unwrap();
    assert!(buffer.write_all(&[5; 1]).is_err());
    assert_eq!(buffer.capacity(), 3000);
}

/// RFC 9659: a zstd sender uses at most an 8 MiB window, so a frame asking for more is refused
/// instead of allocated for.
#[test]
fn a_zstd_window_beyond_8_mib_is_refused() {
    let framed_with = |window_log: u32| {
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        let window = zstd::stream::raw::CParameter::WindowLog(window_log);
        encoder.set_parameter(window).unwrap();
        encoder.write_all(b"{\"model\":\"gpt-5.5\"}").unwrap();
        encoder.finish().unwrap()
    };
    let decode = |frame: Vec<u8>| {
        let mut decoder = Decoder::new(Encoding::Zstd, BoundedBuffer::new(0, 1024)?)?;
        decoder.feed(&frame)?;
        decoder.finish()
    };
    assert!(decode(framed_with(ZSTD_WINDOW_LOG_MAX)).is_ok());
    assert_eq!(
        decode(framed_with(ZSTD_WINDOW_LOG_MAX + 1)),
        Err(IntakeError::Corrupt)
    );
}
