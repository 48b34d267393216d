//! The content codings a request body may arrive in, and their decoders. Every decoder writes
//! its output in blocks of at most [`OUTPUT_BLOCK`] bytes into a [`BoundedBuffer`], which
//! refuses the block that would take the body past its limit: a body never costs more than the
//! limit, one block, and the decoder's own window, however well it compresses.

use std::io::{self, Write};

use actix_web::http::header::{HeaderMap, CONTENT_ENCODING};
use bytes::Bytes;
use flate2::write::{MultiGzDecoder, ZlibDecoder};
use zstd::stream::raw::DParameter;
use zstd::stream::write::Decoder as ZstdDecoder;
use zstd::stream::zio;

use super::IntakeError;

/// The most a decoder writes at once: flate2's fixed output buffer, and the one given to zstd.
pub const OUTPUT_BLOCK: usize = 32 * 1024;

/// The largest zstd window accepted: 8 MiB, the most RFC 9659 lets a sender of
/// `Content-Encoding: zstd` use. A frame asking for more is refused rather than allocated for.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// How a request body is encoded: none (or `identity`), or exactly one of the codings clients
/// send — gzip, deflate (zlib, as RFC 9110 defines it), zstd (the Codex CLI's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Deflate,
    Zstd,
}

impl Encoding {
    /// The encoding its `Content-Encoding` header names. Anything else — an unknown or
    /// unsupported coding such as `br`, a list of codings, the header sent twice — is
    /// refused: passing such a body on undecoded would hand the parser bytes it cannot read.
    pub fn of(headers: &HeaderMap) -> Result<Encoding, IntakeError> {
        let mut values = headers.get_all(CONTENT_ENCODING);
        let Some(value) = values.next() else {
            return Ok(Encoding::Identity);
        };
        if values.next().is_some() {
            return Err(IntakeError::UnsupportedEncoding);
        }
        let token = value
            .to_str()
            .map_err(|_| IntakeError::UnsupportedEncoding)?
            .trim();
        CODINGS
            .iter()
            .find(|(name, _)| token.eq_ignore_ascii_case(name))
            .map(|&(_, encoding)| encoding)
            .ok_or(IntakeError::UnsupportedEncoding)
    }
}

/// The codings accepted, by the name `Content-Encoding` gives them (in any case).
const CODINGS: [(&str, Encoding); 4] = [
    ("identity", Encoding::Identity),
    ("gzip", Encoding::Gzip),
    ("deflate", Encoding::Deflate),
    ("zstd", Encoding::Zstd),
];

/// Why a [`BoundedBuffer`] refused a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    TooLarge,
    NoMemory,
}

/// The decoded body: grows as blocks arrive (doubling, as a `Vec` would) but never past its
/// limit, and asks the allocator rather than aborting when memory runs out.
pub struct BoundedBuffer {
    bytes: Vec<u8>,
    limit: usize,
    refused: Option<Refusal>,
    /// The largest block written at once (what the tests hold the decoders to).
    #[cfg(test)]
    largest_block: usize,
}

impl BoundedBuffer {
    /// An empty buffer of `start` bytes (at most `limit`) that holds at most `limit` bytes.
    pub fn new(start: usize, limit: usize) -> Result<BoundedBuffer, IntakeError> {
        let mut bytes = Vec::new();
        bytes
            .try_reserve_exact(start.min(limit))
            .map_err(|_| IntakeError::Overloaded)?;
        Ok(BoundedBuffer {
            bytes,
            limit,
            refused: None,
            #[cfg(test)]
            largest_block: 0,
        })
    }

    fn refuse(&mut self, refusal: Refusal) -> io::Error {
        self.refused = Some(refusal);
        io::Error::other("the request body was refused")
    }

    /// What went wrong, given that a write through this buffer failed: this buffer's refusal,
    /// or else the decoder's, which only corrupt input causes.
    fn failure(&self) -> IntakeError {
        match self.refused {
            Some(Refusal::TooLarge) => IntakeError::TooLarge { limit: self.limit },
            Some(Refusal::NoMemory) => IntakeError::Overloaded,
            None => IntakeError::Corrupt,
        }
    }

    /// The body in a buffer of about its own length: the response memory may keep it, counted
    /// by its length, and a buffer grown by doubling can be twice that. A body whose length was
    /// declared fills its buffer exactly and is handed over as it is; another is copied once
    /// when more than an eighth of its buffer is spare (a compressed body is decoded at a far
    /// higher cost than that copy).
    fn into_bytes(self) -> Bytes {
        let spare = self.bytes.capacity() - self.bytes.len();
        match spare > self.bytes.len() / 8 {
            true => Bytes::copy_from_slice(&self.bytes),
            false => Bytes::from(self.bytes),
        }
    }

    /// The memory the buffer holds (never more than its limit).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    #[cfg(test)]
    pub fn largest_block(&self) -> usize {
        self.largest_block
    }
}

impl Write for BoundedBuffer {
    fn write(&mut self, block: &[u8]) -> io::Result<usize> {
        #[cfg(test)]
        {
            self.largest_block = self.largest_block.max(block.len());
        }
        let needed = self.bytes.len().saturating_add(block.len());
        if needed > self.limit {
            return Err(self.refuse(Refusal::TooLarge));
        }
        if needed > self.bytes.capacity() {
            let grown = needed.max(self.bytes.capacity() * 2).min(self.limit);
            if self
                .bytes
                .try_reserve_exact(grown - self.bytes.len())
                .is_err()
            {
                return Err(self.refuse(Refusal::NoMemory));
            }
        }
        self.bytes.extend_from_slice(block);
        Ok(block.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A body being decoded into its [`BoundedBuffer`]. Boxed decoders: their state is kilobytes.
pub enum Decoder {
    Identity(BoundedBuffer),
    Gzip(Box<MultiGzDecoder<BoundedBuffer>>),
    Deflate(Box<ZlibDecoder<BoundedBuffer>>),
    Zstd(Box<ZstdDecoder<'static, BoundedBuffer>>),
}

impl Decoder {
    pub fn new(encoding: Encoding, buffer: BoundedBuffer) -> Result<Decoder, IntakeError> {
        Ok(match encoding {
            Encoding::Identity => Decoder::Identity(buffer),
            Encoding::Gzip => Decoder::Gzip(Box::new(MultiGzDecoder::new(buffer))),
            Encoding::Deflate => Decoder::Deflate(Box::new(ZlibDecoder::new(buffer))),
            Encoding::Zstd => Decoder::Zstd(Box::new(zstd_decoder(buffer)?)),
        })
    }

    /// Whether feeding it does real work (decoding), rather than a copy.
    pub fn decodes(&self) -> bool {
        !matches!(self, Decoder::Identity(_))
    }

    /// Decodes `chunk` of the body as sent.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), IntakeError> {
        let written = match self {
            Decoder::Identity(buffer) => buffer.write_all(chunk),
            Decoder::Gzip(decoder) => decoder.write_all(chunk),
            Decoder::Deflate(decoder) => decoder.write_all(chunk),
            Decoder::Zstd(decoder) => decoder.write_all(chunk),
        };
        written.map_err(|_| self.buffer().failure())
    }

    /// The decoded body, once the sent one has ended; a compressed body must end complete.
    pub fn finish(mut self) -> Result<Bytes, IntakeError> {
        let finished = match &mut self {
            Decoder::Identity(_) => Ok(()),
            Decoder::Gzip(decoder) => decoder.try_finish(),
            Decoder::Deflate(decoder) => decoder.try_finish(),
            Decoder::Zstd(decoder) => decoder.do_finish(),
        };
        if finished.is_err() {
            return Err(self.buffer().failure());
        }
        // Finished: what remains is handing the buffer back, which writes nothing more.
        let buffer = match self {
            Decoder::Identity(buffer) => Ok(buffer),
            Decoder::Gzip(decoder) => decoder.finish(),
            Decoder::Deflate(decoder) => decoder.finish(),
            Decoder::Zstd(decoder) => Ok(decoder.into_inner()),
        };
        buffer
            .map(BoundedBuffer::into_bytes)
            .map_err(|_| IntakeError::Corrupt)
    }

    pub fn buffer(&self) -> &BoundedBuffer {
        match self {
            Decoder::Identity(buffer) => buffer,
            Decoder::Gzip(decoder) => decoder.get_ref(),
            Decoder::Deflate(decoder) => decoder.get_ref(),
            Decoder::Zstd(decoder) => decoder.get_ref(),
        }
    }
}

/// A zstd decoder whose window and output block are bounded (see [`ZSTD_WINDOW_LOG_MAX`]).
fn zstd_decoder(buffer: BoundedBuffer) -> Result<ZstdDecoder<'static, BoundedBuffer>, IntakeError> {
    let mut raw = zstd::stream::raw::Decoder::new().map_err(|_| IntakeError::Overloaded)?;
    raw.set_parameter(DParameter::WindowLogMax(ZSTD_WINDOW_LOG_MAX))
        .map_err(|_| IntakeError::Overloaded)?;
    let writer = zio::Writer::new_with_capacity(buffer, raw, OUTPUT_BLOCK);
    Ok(ZstdDecoder::with_writer(writer))
}
