//! slog JSON lines: one object per line with `ts`, `level`, `msg` and the logger's key-values,
//! exactly as `slog_json` writes them.
//!
//! This module owns the whole path of a line from a logging call to stdout. The thread that logs
//! encodes its line itself (a thread-local `slog_json` encoder writing into a thread-local buffer,
//! so a warm thread allocates nothing for it) and appends it to a shared pending buffer, under a
//! lock held only for the copy. The `log-flush` thread takes that buffer every [`FLUSH_EVERY`] —
//! sooner once it passes [`FLUSH_SOON`] — by swapping it out under the lock, and writes it to
//! stdout outside the lock.
//!
//! Why not slog's async drain: for every line it cloned the key-values into a record of its own,
//! pushed it through a channel and woke its logger thread — about 6% of the relay's CPU at
//! 13 000 requests/s. Nor writing from the worker: stdout may block (a full pipe), and a worker is
//! an arbiter that must never block; line-buffered stdout would also be a system call per line.
//!
//! Bounded, and never blocking a worker: if stdout is slow or blocked, pending lines grow to
//! [`MAX_PENDING`]; past it new lines are dropped and counted, and the next write that goes
//! through begins with a WARN line whose `dropped` says how many were lost (lines lost to a
//! failed write are counted the same way). Dropping the guard [`build_logger`] returns writes
//! everything pending before the drop returns.
//!
//! Tests pass [`LogSink::Buffer`]: the same encoding, appended straight to their buffer, so every
//! line is there to read the moment it is logged.

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use slog::{o, Drain, Logger, OwnedKVList, Record};

use crate::settings::LogLevel;

/// Where log lines go.
#[derive(Clone)]
pub enum LogSink {
    Stdout,
    /// A shared buffer (tests read it back).
    Buffer(Arc<Mutex<Vec<u8>>>),
}

/// How long a log line may wait in the pending buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Pending bytes that wake the flush thread before its time (under a burst).
const FLUSH_SOON: usize = 256 * 1024;

/// Pending bytes past which new lines are dropped (and counted) until the output catches up.
const MAX_PENDING: usize = 8 * 1024 * 1024;

/// The message of the line that reports dropped lines.
const DROPPED_MSG: &str = "log lines dropped: the output could not keep up";

#[derive(Clone, Copy)]
struct Limits {
    every: Duration,
    soon: usize,
    cap: usize,
}

const LIMITS: Limits = Limits {
    every: FLUSH_EVERY,
    soon: FLUSH_SOON,
    cap: MAX_PENDING,
};

/// Keep it alive as long as the logger: dropping it writes every pending line to stdout before
/// the drop returns (lines logged later are still flushed while a logger remains).
pub struct LogGuard {
    shared: Arc<Shared>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.flush();
        self.shared.release();
    }
}

/// Builds the root logger. Keep the returned guard alive as long as the logger: dropping it
/// flushes what is pending (there is none for [`LogSink::Buffer`], which is written at once).
pub fn build_logger(sink: LogSink, level: LogLevel) -> (Logger, Option<LogGuard>) {
    let level = match level {
        LogLevel::Trace => slog::Level::Trace,
        LogLevel::Debug => slog::Level::Debug,
        LogLevel::Info => slog::Level::Info,
        LogLevel::Warning => slog::Level::Warning,
        LogLevel::Error => slog::Level::Error,
        LogLevel::Critical => slog::Level::Critical,
    };
    match sink {
        LogSink::Stdout => {
            let (log, guard) = flushed_logger(Box::new(io::stdout()), level, LIMITS);
            (log, Some(guard))
        }
        LogSink::Buffer(buffer) => (logger(Target::Buffer(buffer), level), None),
    }
}

/// A logger whose lines `writer` receives from the flush thread.
fn flushed_logger(
    writer: Box<dyn Write + Send>,
    level: slog::Level,
    limits: Limits,
) -> (Logger, LogGuard) {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending {
            lines: Vec::new(),
            dropped: 0,
            owners: 2, // the drain and the guard
        }),
        filled: Condvar::new(),
        output: Mutex::new(Output {
            writer,
            spare: Vec::new(),
            lost: 0,
            torn: false,
        }),
        limits,
        root: o!("service" => SERVICE).into(),
    });
    let write_through = spawn_flusher(&shared).is_err();
    let target = Target::Flushed {
        shared: Arc::clone(&shared),
        write_through,
    };
    (logger(target, level), LogGuard { shared })
}

const SERVICE: &str = "codex-relay";

fn logger(target: Target, level: slog::Level) -> Logger {
    let drain = LineDrain { target }.filter_level(level).fuse();
    Logger::root(drain, o!("service" => SERVICE))
}

/// The flush thread: a plain thread of its own (never an arbiter), so it may wait and block on
/// stdout. It ends after a last flush once the drain and the guard are gone.
fn spawn_flusher(shared: &Arc<Shared>) -> io::Result<()> {
    let shared = Arc::clone(shared);
    std::thread::Builder::new()
        .name("log-flush".to_owned())
        .spawn(move || loop {
            let open = shared.wait_for_lines();
            shared.flush();
            if !open {
                return;
            }
        })
        .map(drop)
}

/// The drain: encodes on the calling thread, then appends.
struct LineDrain {
    target: Target,
}

enum Target {
    /// Appended to the pending buffer; `write_through` when there is no flush thread (it could
    /// not be started), so that lines are written at once rather than never.
    Flushed {
        shared: Arc<Shared>,
        write_through: bool,
    },
    Buffer(Arc<Mutex<Vec<u8>>>),
}

impl Drain for LineDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), slog::Never> {
        match &self.target {
            Target::Flushed {
                shared,
                write_through,
            } => {
                encode(record, values, &mut |line| shared.append(line));
                if *write_through {
                    shared.flush();
                }
            }
            Target::Buffer(buffer) => {
                encode(record, values, &mut |line| {
                    lock(buffer).extend_from_slice(line);
                });
            }
        }
        Ok(())
    }
}

impl Drop for LineDrain {
    fn drop(&mut self) {
        if let Target::Flushed { shared, .. } = &self.target {
            shared.release();
        }
    }
}

/// What the drain, the guard and the flush thread share.
struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the flush thread when the pending lines cross `limits.soon` or an owner leaves.
    filled: Condvar,
    /// Locked before `pending` whenever both are: by whoever writes, so chunks keep their order.
    output: Mutex<Output>,
    limits: Limits,
    /// The root logger's key-values, for the dropped-lines report.
    root: OwnedKVList,
}

struct Pending {
    lines: Vec<u8>,
    /// Lines dropped since the last flush because `lines` was full.
    dropped: u64,
    /// The drain and the guard, while they live.
    owners: u8,
}

struct Output {
    writer: Box<dyn Write + Send>,
    /// The buffer swapped with the pending one: its capacity is reused.
    spare: Vec<u8>,
    /// Lines a failed write lost, reported with the next report.
    lost: u64,
    /// A failed write stopped inside a line: the next write ends it first.
    torn: bool,
}

impl Shared {
    /// On a worker: appends one line, or counts it dropped. Never waits on the output.
    fn append(&self, line: &[u8]) {
        let mut pending = lock(&self.pending);
        let before = pending.lines.len();
        if before + line.len() > self.limits.cap {
            pending.dropped += 1;
            return;
        }
        pending.lines.extend_from_slice(line);
        let crossed = before < self.limits.soon && pending.lines.len() >= self.limits.soon;
        drop(pending);
        if crossed {
            self.filled.notify_one();
        }
    }

    /// Waits until it is time to flush; false once no owner is left (the last flush).
    fn wait_for_lines(&self) -> bool {
        let pending = lock(&self.pending);
        let (pending, _) = self
            .filled
            .wait_timeout_while(pending, self.limits.every, |p| {
                p.lines.len() < self.limits.soon && p.owners > 0
            })
            .unwrap_or_else(PoisonError::into_inner);
        pending.owners > 0
    }

    /// Writes everything pending (after the report of dropped lines, if any).
    fn flush(&self) {
        let mut output = lock(&self.output);
        let output = &mut *output;
        let dropped = {
            let mut pending = lock(&self.pending);
            std::mem::swap(&mut pending.lines, &mut output.spare);
            std::mem::take(&mut pending.dropped)
        };
        output.write_pending(dropped, &self.root, self.limits.soon);
    }

    /// An owner (the drain or the guard) is gone.
    fn release(&self) {
        let mut pending = lock(&self.pending);
        pending.owners = pending.owners.saturating_sub(1);
        drop(pending);
        self.filled.notify_one();
    }
}

impl Output {
    /// Writes the report of `dropped` (plus lost) lines if any, then the lines in `spare`.
    fn write_pending(&mut self, dropped: u64, root: &OwnedKVList, keep: usize) {
        let dropped = dropped + std::mem::take(&mut self.lost);
        if dropped == 0 && self.spare.is_empty() {
            return;
        }
        if dropped > 0 {
            let mut reported = false;
            encode(
                &slog::record!(
                    slog::Level::Warning,
                    "",
                    &format_args!("{DROPPED_MSG}"),
                    slog::b!("dropped" => dropped)
                ),
                root,
                &mut |line| reported = self.write_lines(line).is_ok(),
            );
            if !reported {
                self.lost += dropped;
            }
        }
        let mut lines = std::mem::take(&mut self.spare);
        if let Err(written) = self.write_lines(&lines) {
            self.lost += memchr::memchr_iter(b'\n', &lines[written..]).count() as u64;
        }
        let _ = self.writer.flush();
        lines.clear();
        // A burst's buffer is not kept for good.
        lines.shrink_to(keep.saturating_mul(2));
        self.spare = lines;
    }

    /// Writes whole `lines`, or says how many bytes of them were written before a failure.
    fn write_lines(&mut self, lines: &[u8]) -> Result<(), usize> {
        if self.torn {
            write_counted(&mut *self.writer, b"\n").map_err(|_| 0_usize)?;
            self.torn = false;
        }
        write_counted(&mut *self.writer, lines).inspect_err(|&written| {
            self.torn = written > 0 && lines[written - 1] != b'\n';
        })
    }
}

/// `write_all` that says how many bytes were written before it failed.
fn write_counted(writer: &mut dyn Write, bytes: &[u8]) -> Result<(), usize> {
    let mut written = 0;
    while written < bytes.len() {
        match writer.write(&bytes[written..]) {
            Ok(0) => return Err(written),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(written),
        }
    }
    Ok(())
}

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
fn encode(record: &Record, values: &OwnedKVList, out: &mut dyn FnMut(&[u8])) {
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

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};
    use slog::{debug, error, info, warn};
    use std::time::Instant;

    /// What a test waits for at most; conditions normally hold within milliseconds.
    const PATIENCE: Duration = Duration::from_secs(20);

    /// Never on their own: only a guard's drop, an explicit flush or crossing `soon` flushes.
    const NEVER: Limits = Limits {
        every: Duration::from_secs(3600),
        soon: usize::MAX,
        cap: MAX_PENDING,
    };

    /// An output that keeps what it receives, at most `chunk` bytes per `write`, and fails every
    /// write once it has accepted `budget` bytes.
    #[derive(Clone)]
    struct Capture(Arc<Mutex<CaptureState>>);

    struct CaptureState {
        bytes: Vec<u8>,
        chunk: usize,
        budget: Option<usize>,
    }

    impl Capture {
        fn new(chunk: usize) -> Capture {
            Capture(Arc::new(Mutex::new(CaptureState {
                bytes: Vec::new(),
                chunk,
                budget: None,
            })))
        }
        fn set_budget(&self, budget: Option<usize>) {
            lock(&self.0).budget = budget;
        }
        fn text(&self) -> String {
            String::from_utf8(lock(&self.0).bytes.clone()).unwrap()
        }
        /// Every line, each of which must be a JSON object.
        fn objects(&self) -> Vec<Map<String, Value>> {
            self.text().lines().map(object).collect()
        }
    }

    impl Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let mut state = lock(&self.0);
            let mut n = bytes.len().min(state.chunk);
            if let Some(budget) = &mut state.budget {
                if *budget == 0 {
                    return Err(io::Error::from(io::ErrorKind::BrokenPipe));
                }
                n = n.min(*budget);
                *budget -= n;
            }
            state.bytes.extend_from_slice(&bytes[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// An output whose writes block until it is opened.
    #[derive(Clone)]
    struct Gate(Arc<(Mutex<GateState>, Condvar)>);

    #[derive(Default)]
    struct GateState {
        open: bool,
        blocked: bool,
        bytes: Vec<u8>,
    }

    impl Gate {
        fn closed() -> Gate {
            Gate(Arc::default())
        }
        fn wait_blocked(&self) -> bool {
            let (state, changed) = &*self.0;
            let (state, _) = changed
                .wait_timeout_while(lock(state), PATIENCE, |s| !s.blocked)
                .unwrap();
            state.blocked
        }
        fn open(&self) {
            let (state, changed) = &*self.0;
            lock(state).open = true;
            changed.notify_all();
        }
        fn objects(&self) -> Vec<Map<String, Value>> {
            let bytes = lock(&self.0 .0).bytes.clone();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(object)
                .collect()
        }
    }

    impl Write for Gate {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let (state, changed) = &*self.0;
            let mut state = lock(state);
            state.blocked = true;
            changed.notify_all();
            let mut state = changed.wait_while(state, |s| !s.open).unwrap();
            state.blocked = false;
            state.bytes.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn object(line: &str) -> Map<String, Value> {
        match serde_json::from_str(line) {
            Ok(Value::Object(map)) => map,
            _ => panic!("not a JSON object line: {line:?}"),
        }
    }

    fn eventually(mut condition: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < PATIENCE {
            if condition() {
                return true;
            }
            std::thread::yield_now();
            std::thread::park_timeout(Duration::from_millis(5));
        }
        condition()
    }

    fn msgs(objects: &[Map<String, Value>]) -> Vec<&str> {
        objects.iter().map(|o| o["msg"].as_str().unwrap()).collect()
    }

    #[test]
    fn lines_from_several_threads_arrive_whole_and_in_order() {
        // Small writes, and a low wake-up mark: flushes run while the threads log.
        let out = Capture::new(1000);
        let limits = Limits {
            soon: 16 * 1024,
            ..LIMITS
        };
        let (log, guard) = flushed_logger(Box::new(out.clone()), slog::Level::Debug, limits);
        const THREADS: u64 = 4;
        const LINES: u64 = 3000;
        let threads: Vec<_> = (0..THREADS)
            .map(|thread| {
                let log = log.new(o!("thread" => thread));
                std::thread::spawn(move || {
                    for seq in 0..LINES {
                        let pad = "x".repeat((seq % 97) as usize);
                        info!(log, "line"; "seq" => seq, "pad" => pad);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);

        let mut next = [0; THREADS as usize];
        for line in out.objects() {
            let thread = line["thread"].as_u64().unwrap() as usize;
            assert_eq!(
                line["seq"].as_u64().unwrap(),
                next[thread],
                "thread {thread} out of order"
            );
            assert_eq!(
                line["pad"].as_str().unwrap().len() as u64,
                next[thread] % 97
            );
            next[thread] += 1;
        }
        assert_eq!(next, [LINES; THREADS as usize], "every line arrived");
    }

    #[test]
    fn a_blocked_output_drops_lines_past_the_cap_and_the_next_write_reports_them() {
        let gate = Gate::closed();
        let limits = Limits {
            cap: 4096,
            ..LIMITS
        };
        let (log, guard) = flushed_logger(Box::new(gate.clone()), slog::Level::Debug, limits);
        info!(log, "first");
        assert!(
            gate.wait_blocked(),
            "the flush thread writes the first line"
        );

        // The flush thread is stuck in a write: a worker still logs without waiting.
        const LINES: u64 = 200;
        let (done, finished) = std::sync::mpsc::channel();
        let worker = log.clone();
        std::thread::spawn(move || {
            for seq in 0..LINES {
                info!(worker, "later"; "seq" => seq, "pad" => "y".repeat(60));
            }
            let _ = done.send(());
        });
        finished
            .recv_timeout(PATIENCE)
            .expect("a blocked output never blocks a worker");
        let dropped = {
            let pending = lock(&guard.shared.pending);
            assert!(pending.lines.len() <= 4096, "the cap holds");
            pending.dropped
        };
        assert!(dropped > 0 && dropped < LINES, "dropped {dropped}");

        gate.open();
        drop(guard);
        let lines = gate.objects();
        assert_eq!(lines[0]["msg"], "first");
        assert_eq!(lines[1]["msg"], DROPPED_MSG);
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["service"], SERVICE);
        assert_eq!(lines[1]["dropped"].as_u64(), Some(dropped));
        let kept: Vec<u64> = lines[2..]
            .iter()
            .map(|l| l["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(
            kept,
            (0..LINES - dropped).collect::<Vec<_>>(),
            "the first lines are kept"
        );
        drop(log);
    }

    #[test]
    fn a_failed_write_is_counted_and_reported_by_the_next_one() {
        let out = Capture::new(usize::MAX);
        let (log, guard) = flushed_logger(Box::new(out.clone()), slog::Level::Debug, NEVER);
        for seq in 0..3 {
            info!(log, "lost"; "seq" => seq);
        }
        // The write stops inside the first line.
        out.set_budget(Some(10));
        guard.shared.flush();
        assert_eq!(lock(&guard.shared.output).lost, 3);

        out.set_budget(None);
        info!(log, "after");
        drop(guard);
        let text = out.text();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().map(str::len),
            Some(10),
            "the torn line is ended"
        );
        let rest: Vec<_> = lines.map(object).collect();
        assert_eq!(msgs(&rest), [DROPPED_MSG, "after"]);
        assert_eq!(rest[0]["dropped"], 3);
        drop(log);
    }

    #[test]
    fn dropping_the_guard_writes_pending_lines() {
        let out = Capture::new(usize::MAX);
        let (log, guard) = flushed_logger(Box::new(out.clone()), slog::Level::Debug, NEVER);
        info!(log, "one");
        warn!(log, "two"; "n" => 2);
        assert_eq!(out.text(), "", "nothing is written before a flush");
        drop(guard);
        assert_eq!(msgs(&out.objects()), ["one", "two"]);
        // Lines after the guard's drop still reach the output, by the flush thread's last flush.
        info!(log, "three");
        drop(log);
        assert!(eventually(|| out.text().contains("three")));
    }

    #[test]
    fn crossing_the_mark_wakes_the_flush_thread() {
        let out = Capture::new(usize::MAX);
        let limits = Limits {
            soon: 1000,
            ..NEVER
        };
        let (log, _guard) = flushed_logger(Box::new(out.clone()), slog::Level::Debug, limits);
        for seq in 0..20 {
            info!(log, "burst"; "seq" => seq, "pad" => "z".repeat(40));
        }
        assert!(
            eventually(|| out.text().lines().count() >= 10),
            "written long before the hour is up"
        );
    }

    #[test]
    fn levels_below_the_configured_one_are_not_written() {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let (log, guard) = build_logger(LogSink::Buffer(Arc::clone(&buffer)), LogLevel::Warning);
        assert!(guard.is_none());
        debug!(log, "debug");
        info!(log, "info");
        warn!(log, "warning");
        error!(log, "error");
        let text = String::from_utf8(lock(&buffer).clone()).unwrap();
        let lines: Vec<_> = text.lines().map(object).collect();
        assert_eq!(msgs(&lines), ["warning", "error"]);

        let out = Capture::new(usize::MAX);
        let (log, guard) = flushed_logger(Box::new(out.clone()), slog::Level::Error, NEVER);
        warn!(log, "warning");
        error!(log, "error");
        drop(guard);
        assert_eq!(msgs(&out.objects()), ["error"]);
    }

    #[test]
    fn lines_are_slog_json_lines() {
        let ours = Arc::new(Mutex::new(Vec::new()));
        let (log, _) = build_logger(LogSink::Buffer(Arc::clone(&ours)), LogLevel::Debug);
        let theirs = Capture::new(usize::MAX);
        let json = slog_json::Json::default(theirs.clone());
        let reference = Logger::root(Mutex::new(json).map(slog::Fuse), o!("service" => SERVICE));
        for log in [log, reference] {
            let child = log.new(o!("request_id" => "r-1", "n" => 7));
            info!(child, "request"; "status" => 200_u16, "path" => "/v1/\"x\"", "ok" => true,
                "ratio" => 0.5, "none" => None::<u8>, "fmt" => %format_args!("{}-{}", 1, 2));
        }
        let ours = object(std::str::from_utf8(&lock(&ours)).unwrap().trim_end());
        let theirs = object(theirs.text().trim_end());
        let keys = |o: &Map<String, Value>| o.keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&ours), keys(&theirs), "same keys in the same order");
        // slog hands key-values over last first.
        let order = [
            "msg",
            "level",
            "ts",
            "n",
            "request_id",
            "service",
            "fmt",
            "none",
            "ratio",
            "ok",
            "path",
            "status",
        ];
        assert_eq!(keys(&ours), order);
        for (key, value) in &ours {
            if key != "ts" {
                assert_eq!(value, &theirs[key], "{key}");
            }
        }
    }
}
