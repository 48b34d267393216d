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
//!
//! The minimum level is a [`LogLevelSwitch`]: one atomic load per logging call, so that a settings
//! reload can change `log.level` in a running relay.

mod encode;
mod flush;

use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use slog::{o, Drain, Logger, OwnedKVList, Record};

use self::encode::encode;
use self::flush::Shared;
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

/// The minimum level of a logger's lines, changeable while it logs; clones share it.
#[derive(Clone)]
pub struct LogLevelSwitch(Arc<AtomicUsize>);

impl LogLevelSwitch {
    pub fn new(level: LogLevel) -> LogLevelSwitch {
        LogLevelSwitch(Arc::new(AtomicUsize::new(slog_level(level).as_usize())))
    }

    /// Lines at `level` and above are written from now on.
    pub fn set(&self, level: LogLevel) {
        self.0
            .store(slog_level(level).as_usize(), Ordering::Relaxed);
    }

    /// slog numbers its levels from Critical (1) to Trace (6).
    fn allows(&self, level: slog::Level) -> bool {
        level.as_usize() <= self.0.load(Ordering::Relaxed)
    }
}

fn slog_level(level: LogLevel) -> slog::Level {
    match level {
        LogLevel::Trace => slog::Level::Trace,
        LogLevel::Debug => slog::Level::Debug,
        LogLevel::Info => slog::Level::Info,
        LogLevel::Warning => slog::Level::Warning,
        LogLevel::Error => slog::Level::Error,
        LogLevel::Critical => slog::Level::Critical,
    }
}

/// Builds the root logger. Keep the returned guard alive as long as the logger: dropping it
/// flushes what is pending (there is none for [`LogSink::Buffer`], which is written at once).
pub fn build_logger(sink: LogSink, level: LogLevel) -> (Logger, Option<LogGuard>) {
    build_switched_logger(sink, &LogLevelSwitch::new(level))
}

/// Like [`build_logger`], with its minimum level read from `level` at each line.
pub fn build_switched_logger(sink: LogSink, level: &LogLevelSwitch) -> (Logger, Option<LogGuard>) {
    let level = level.clone();
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
    level: LogLevelSwitch,
    limits: Limits,
) -> (Logger, LogGuard) {
    let shared = Arc::new(Shared::new(writer, limits, o!("service" => SERVICE).into()));
    let write_through = spawn_flusher(&shared).is_err();
    let target = Target::Flushed {
        shared: Arc::clone(&shared),
        write_through,
    };
    (logger(target, level), LogGuard { shared })
}

const SERVICE: &str = "codex-relay";

fn logger(target: Target, level: LogLevelSwitch) -> Logger {
    let drain = Switched {
        drain: LineDrain { target },
        level,
    };
    Logger::root(drain.fuse(), o!("service" => SERVICE))
}

/// Passes on the lines at or above the switch's level.
struct Switched {
    drain: LineDrain,
    level: LogLevelSwitch,
}

impl Drain for Switched {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), slog::Never> {
        if self.level.allows(record.level()) {
            self.drain.log(record, values)?;
        }
        Ok(())
    }

    fn is_enabled(&self, level: slog::Level) -> bool {
        self.level.allows(level)
    }
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

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
