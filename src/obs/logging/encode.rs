//! One record as one `slog_json` line, encoded on the thread that logs it: a thread-local encoder
//! writing into a thread-local buffer, so a warm thread allocates nothing for it.

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::rc::Rc;

use slog::{Drain, OwnedKVList, Record};

thread_local! {
    static ENCODER: Encoder = Encoder::new();
}

/// One thread's `slog_json` encoder and the buffer it writes a line into.
struct Encoder {
    json: slog_json::Json<LineWriter>,
    line: Rc<RefCell<Vec<u8>>>,
    /// A line is being encoded (a value that logs while it is encoded gets a one-off encoder).
    busy: Cell<bool>,
}

struct LineWriter(Rc<RefCell<Vec<u8>>>);

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Encoder {
    fn new() -> Encoder {
        let line = Rc::new(RefCell::new(Vec::with_capacity(1024)));
        Encoder {
            json: slog_json::Json::default(LineWriter(Rc::clone(&line))),
            line,
            busy: Cell::new(false),
        }
    }

    /// Encodes into this thread's buffer; false if it is in use.
    fn encode(&self, record: &Record, values: &OwnedKVList, out: &mut dyn FnMut(&[u8])) -> bool {
        if self.busy.replace(true) {
            return false;
        }
        let _busy = Busy(&self.busy);
        self.line.borrow_mut().clear();
        if self.json.log(record, values).is_ok() {
            out(&self.line.borrow());
        }
        let mut line = self.line.borrow_mut();
        line.clear();
        line.shrink_to(64 * 1024);
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
