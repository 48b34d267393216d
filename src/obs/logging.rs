//! slog JSON lines: one object per line with `ts`, `level`, `msg` and the logger's key-values.
//! Production writes to stdout through an async drain (flushed when the guard drops); tests pass
//! their own sink to read every line the relay wrote.
//!
//! Stdout is line-buffered, which costs a write system call per line — two per request. The
//! drain writes into a buffer instead, which a timer thread flushes every [`FLUSH_EVERY`], so a
//! line reaches the log within that time however busy or quiet the relay is.

use std::io::{BufWriter, Stdout, Write};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use slog::{o, Drain, Logger};

use crate::settings::LogLevel;

/// Where log lines go.
#[derive(Clone)]
pub enum LogSink {
    Stdout,
    /// A shared buffer (tests read it back).
    Buffer(Arc<Mutex<Vec<u8>>>),
}

struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl Write for BufferWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut buffer = self.0.lock().unwrap_or_else(|e| e.into_inner());
        buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How long a log line may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Stdout behind a buffer that is flushed when full, every [`FLUSH_EVERY`], and when dropped.
struct BufferedStdout(Arc<Mutex<BufWriter<Stdout>>>);

impl BufferedStdout {
    fn new() -> BufferedStdout {
        let shared = Arc::new(Mutex::new(BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout(),
        )));
        let weak: Weak<Mutex<BufWriter<Stdout>>> = Arc::downgrade(&shared);
        // The thread ends once the drain (the only strong owner) is gone. It is a plain thread of
        // its own, never an arbiter, so it may sleep.
        #[allow(clippy::disallowed_methods)]
        let spawned = std::thread::Builder::new()
            .name("log-flush".to_owned())
            .spawn(move || loop {
                std::thread::sleep(FLUSH_EVERY);
                let Some(buffer) = weak.upgrade() else { return };
                let _ = buffer.lock().unwrap_or_else(|e| e.into_inner()).flush();
            });
        if spawned.is_err() {
            // No timer thread: write every line through at once rather than let lines wait.
            return BufferedStdout(Arc::new(Mutex::new(BufWriter::with_capacity(
                0,
                std::io::stdout(),
            ))));
        }
        BufferedStdout(shared)
    }

    fn buffer(&self) -> std::sync::MutexGuard<'_, BufWriter<Stdout>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Write for BufferedStdout {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer().write(bytes)
    }
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.buffer().write_all(bytes)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.buffer().flush()
    }
}

impl Drop for BufferedStdout {
    fn drop(&mut self) {
        let _ = self.buffer().flush();
    }
}

/// Builds the root logger. Keep the returned guard alive as long as the logger: dropping it
/// flushes the async drain.
pub fn build_logger(sink: LogSink, level: LogLevel) -> (Logger, Option<slog_async::AsyncGuard>) {
    let level = match level {
        LogLevel::Trace => slog::Level::Trace,
        LogLevel::Debug => slog::Level::Debug,
        LogLevel::Info => slog::Level::Info,
        LogLevel::Warning => slog::Level::Warning,
        LogLevel::Error => slog::Level::Error,
        LogLevel::Critical => slog::Level::Critical,
    };
    let root = o!("service" => "codex-relay");
    match sink {
        LogSink::Stdout => {
            let json = slog_json::Json::default(BufferedStdout::new()).fuse();
            let (drain, guard) = slog_async::Async::new(json)
                .chan_size(8192)
                .overflow_strategy(slog_async::OverflowStrategy::DropAndReport)
                .build_with_guard();
            let drain = drain.filter_level(level).fuse();
            (Logger::root(drain, root), Some(guard))
        }
        LogSink::Buffer(buffer) => {
            let json = slog_json::Json::default(BufferWriter(buffer));
            let drain = Mutex::new(json).map(slog::Fuse).filter_level(level).fuse();
            (Logger::root(drain, root), None)
        }
    }
}
