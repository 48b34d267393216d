//! slog JSON lines: one object per line with `ts`, `level`, `msg` and the logger's key-values.
//! Production writes to stdout through an async drain (flushed when the guard drops); tests pass
//! their own sink to read every line the relay wrote.

use std::io::Write;
use std::sync::{Arc, Mutex};

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
            let json = slog_json::Json::default(std::io::stdout()).fuse();
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
