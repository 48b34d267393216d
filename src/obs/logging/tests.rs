use std::sync::Condvar;

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
    let (log, guard) = flushed_logger(
        Box::new(out.clone()),
        LogLevelSwitch::new(LogLevel::Debug),
        limits,
    );
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
    let (log, guard) = flushed_logger(
        Box::new(gate.clone()),
        LogLevelSwitch::new(LogLevel::Debug),
        limits,
    );
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
    let (pending, dropped) = guard.shared.pending_state();
    assert!(pending <= 4096, "the cap holds");
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
    let (log, guard) = flushed_logger(
        Box::new(out.clone()),
        LogLevelSwitch::new(LogLevel::Debug),
        NEVER,
    );
    for seq in 0..3 {
        info!(log, "lost"; "seq" => seq);
    }
    // The write stops inside the first line.
    out.set_budget(Some(10));
    guard.shared.flush();
    assert_eq!(guard.shared.lost(), 3);

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
    let (log, guard) = flushed_logger(
        Box::new(out.clone()),
        LogLevelSwitch::new(LogLevel::Debug),
        NEVER,
    );
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
    let (log, _guard) = flushed_logger(
        Box::new(out.clone()),
        LogLevelSwitch::new(LogLevel::Debug),
        limits,
    );
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
    let (log, guard) = flushed_logger(
        Box::new(out.clone()),
        LogLevelSwitch::new(LogLevel::Error),
        NEVER,
    );
    warn!(log, "warning");
    error!(log, "error");
    drop(guard);
    assert_eq!(msgs(&out.objects()), ["error"]);
}

#[test]
fn a_level_switch_changes_what_a_running_logger_writes() {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let switch = LogLevelSwitch::new(LogLevel::Warning);
    let (log, _) = build_switched_logger(LogSink::Buffer(Arc::clone(&buffer)), &switch);
    info!(log, "before");
    switch.set(LogLevel::Debug);
    debug!(log, "after");
    switch.set(LogLevel::Error);
    warn!(log, "quiet again");
    let text = String::from_utf8(lock(&buffer).clone()).unwrap();
    let lines: Vec<_> = text.lines().map(object).collect();
    assert_eq!(msgs(&lines), ["after"]);
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

/// A value whose serialization fails half-way through its line.
struct Unwritable;

impl slog::Value for Unwritable {
    fn serialize(&self, _: &Record, _: slog::Key, _: &mut dyn slog::Serializer) -> slog::Result {
        Err(slog::Error::Other)
    }
}

#[test]
fn a_line_that_cannot_be_encoded_is_skipped_and_leaves_nothing_in_the_next() {
    let ours = Arc::new(Mutex::new(Vec::new()));
    let (log, _) = build_logger(LogSink::Buffer(Arc::clone(&ours)), LogLevel::Debug);
    // Fields come out last first: the failing value is reached after "written" is in the line.
    info!(log, "broken"; "bad" => Unwritable, "written" => "half a line");
    info!(log, "whole"; "status" => 200_u16);
    let text = String::from_utf8(lock(&ours).clone()).unwrap();
    let lines: Vec<_> = text.lines().map(object).collect();
    assert_eq!(msgs(&lines), ["whole"], "{text}");
    assert!(!text.contains("half a line"), "{text}");
}
