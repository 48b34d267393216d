//! One record as one `slog_json` line, encoded on the thread that logs it: a thread-local encoder
//! writing into a buffer of its own, so a warm thread allocates nothing for it.
//!
//! `slog_json` writes a line in many small pieces (each key, quote, colon and value), so what a
//! write costs is most of what a field costs. The encoder's writer owns its buffer: a write is
//! an append, with no shared cell to borrow. The line leaves it when `slog_json` flushes, once,
//! at the end of a record it encoded whole.

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::mem;
use std::rc::Rc;

use slog::{Drain, OwnedKVList, Record};

thread_local! {
    static ENCODER: Encoder = Encoder::new();
}

/// A line is at most this large between records: a rare huge line gives its memory back.
const KEPT_CAPACITY: usize = 64 * 1024;

/// One thread's `slog_json` encoder and the slot a finished line is handed out through.
struct Encoder {
    json: RefCell<slog_json::Json<LineWriter>>,
    finished: Rc<RefCell<Vec<u8>>>,
    /// A line is being encoded (a value that logs while it is encoded gets a one-off encoder).
    busy: Cell<bool>,
}

/// Collects a line; its flush hands the line to `finished` (swapping buffers: no copy).
struct LineWriter {
    line: Vec<u8>,
    finished: Rc<RefCell<Vec<u8>>>,
}

impl Write for LineWriter {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    #[inline]
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut finished = self.finished.borrow_mut();
        mem::swap(&mut *finished, &mut self.line);
        self.line.clear();
        Ok(())
    }
}

fn json(finished: &Rc<RefCell<Vec<u8>>>) -> slog_json::Json<LineWriter> {
    let writer = LineWriter {
        line: Vec::with_capacity(1024),
        finished: Rc::clone(finished),
    };
    slog_json::Json::new(writer)
        .add_default_keys()
        .set_flush(true)
        .build()
}

impl Encoder {
    fn new() -> Encoder {
        let finished = Rc::new(RefCell::new(Vec::with_capacity(1024)));
        Encoder {
            json: RefCell::new(json(&finished)),
            finished,
            busy: Cell::new(false),
        }
    }

    /// Encodes with this thread's encoder; false if it is in use.
    fn encode(&self, record: &Record, values: &OwnedKVList, out: &mut dyn FnMut(&[u8])) -> bool {
        if self.busy.replace(true) {
            return false;
        }
        let _busy = Busy(&self.busy);
        let encoded = self.json.borrow().log(record, values).is_ok();
        if encoded {
            let mut finished = self.finished.borrow_mut();
            out(&finished);
            finished.clear();
            finished.shrink_to(KEPT_CAPACITY);
        } else {
            // The writer holds the part of the line written before the failure: start afresh
            // rather than let it lead the next line.
            *self.json.borrow_mut() = json(&self.finished);
        }
        true
    }
}

struct Busy<'a>(&'a Cell<bool>);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Encodes `record` as one JSON line (with its newline) and hands it to `out`; a line that cannot
/// be encoded (a value whose serialization fails) is skipped.
pub(super) fn encode(record: &Record, values: &OwnedKVList, out: &mut dyn FnMut(&[u8])) {
    let encoded = ENCODER
        .try_with(|encoder| encoder.encode(record, values, out))
        .unwrap_or(false);
    if !encoded {
        // Reentered, or a thread whose locals are gone: a one-off encoder.
        let mut line = Vec::new();
        if slog_json::Json::default(&mut line)
            .log(record, values)
            .is_ok()
        {
            out(&line);
        }
    }
}
