//! An upstream SSE stream through the relay's side path, cut into chunks three ways (whole,
//! pseudo-random sizes drawn from the stream's own bytes, and byte by byte for short streams):
//! `StreamWatcher` (the framer, the event reads, the usage completion) as a stream is forwarded,
//! and `Assembler` as a non-streaming answer is built.
//!
//! Invariants: nothing panics; however the stream is chunked, the watcher forwards the same
//! events and ends in the same state, and the assembler builds the same answer; what the watcher
//! forwards frames into the same events, of the same types, as the stream it was given (the one
//! event it re-encodes keeps its place and its type).
#![no_main]

use bytes::Bytes;
use codex_relay::upstream::assemble::{Assembled, Assembler};
use codex_relay::upstream::sse::{event_type, events, StreamWatcher, Terminal};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Streams up to this size are also fed one byte at a time.
const BYTE_BY_BYTE_MAX: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let whole = Watched::of(data, &[data.len()]);
    let mut chunkings = vec![pseudo_random_sizes(data)];
    if data.len() <= BYTE_BY_BYTE_MAX {
        chunkings.push(vec![1; data.len()]);
    }
    for sizes in &chunkings {
        let chunked = Watched::of(data, sizes);
        assert_eq!(chunked.state, whole.state, "the same end state");
        assert_eq!(chunked.events, whole.events, "the same events");
        assert_eq!(chunked.assembled, whole.assembled, "the same answer");
    }
    // The stream as a client reads it: a last event without its blank line is completed.
    let mut sent = data.to_vec();
    sent.extend_from_slice(b"\n\n");
    assert_eq!(
        types(&whole.events),
        types(&framed(&sent)),
        "the same events"
    );
});

/// What the side path made of one chunking of a stream.
struct Watched {
    state: (Option<String>, Option<u64>, bool, Option<Terminal>),
    /// The events forwarded, but for those of white space alone (a client dispatches nothing).
    events: Vec<Vec<u8>>,
    assembled: String,
}

impl Watched {
    fn of(data: &[u8], sizes: &[usize]) -> Watched {
        let mut watcher = StreamWatcher::default();
        let mut assembler = Assembler::default();
        let mut forwarded = Vec::new();
        for chunk in chunks(data, sizes) {
            let chunk = Bytes::copy_from_slice(chunk);
            forwarded.extend_from_slice(&watcher.forward(chunk.clone()));
            assembler.push(chunk);
        }
        if let Some(last) = watcher.flush() {
            forwarded.extend_from_slice(&last);
        }
        Watched {
            state: (
                watcher.response_id,
                watcher.last_sequence,
                watcher.saw_output,
                watcher.terminal,
            ),
            events: framed(&forwarded),
            assembled: describe(assembler.finish("gpt-5.5")),
        }
    }
}

/// `data` cut into `sizes` (cycled), each at least one byte.
fn chunks<'a>(data: &'a [u8], sizes: &'a [usize]) -> impl Iterator<Item = &'a [u8]> {
    let mut rest = data;
    let mut sizes = sizes.iter().cycle();
    std::iter::from_fn(move || {
        let size = (*sizes.next()?).clamp(1, rest.len().max(1));
        let (chunk, after) = rest.split_at(size.min(rest.len()));
        rest = after;
        (!chunk.is_empty()).then_some(chunk)
    })
}

/// Chunk sizes of 1 to 64 bytes, drawn from the stream's bytes so that a run is repeatable.
fn pseudo_random_sizes(data: &[u8]) -> Vec<usize> {
    let mut state = data.iter().fold(0x9E37_79B9_7F4A_7C15_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    }) | 1;
    (0..32)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 64) as usize + 1
        })
        .collect()
}

/// The events of a buffer of whole events that hold more than white space (the others carry
/// nothing, and an unfinished one is dropped at the end), each without its leading blank lines.
fn framed(buffer: &[u8]) -> Vec<Vec<u8>> {
    events(buffer)
        .map(|(start, end, _)| &buffer[start..end])
        .map(|block| {
            let skip = block
                .iter()
                .take_while(|b| matches!(b, b'\n' | b'\r'))
                .count();
            block[skip..].to_vec()
        })
        .filter(|block| !block.iter().all(u8::is_ascii_whitespace))
        .collect()
}

fn types(events: &[Vec<u8>]) -> Vec<Option<String>> {
    events
        .iter()
        .map(|e| event_type(e).map(str::to_owned))
        .collect()
}

/// The assembled answer, without what the relay makes up when the stream lacks it: the time, and
/// an id of its own.
fn describe(assembled: Assembled) -> String {
    match assembled {
        Assembled::Response(mut response) => {
            if let Value::Object(map) = &mut response {
                map.remove("created_at");
                if map["id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("resp_relay_"))
                {
                    map.remove("id");
                }
            }
            format!("response {response}")
        }
        Assembled::Failed(error) => format!("failed {error}"),
        Assembled::Truncated => "truncated".to_owned(),
    }
}
