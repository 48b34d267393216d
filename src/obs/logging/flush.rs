//! The pending lines between the threads that log and stdout: a buffer they append to under a
//! short lock, bounded (past the cap lines are dropped and counted), and the writing side the
//! `log-flush` thread runs — swap the buffer out, write it outside the lock, report what was lost.

use std::io::{self, Write};
use std::sync::{Condvar, Mutex, PoisonError};

use slog::OwnedKVList;

use super::encode::encode;
use super::{lock, Limits, DROPPED_MSG};

/// What the drain, the guard and the flush thread share.
pub(super) struct Shared {
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
    /// Nothing pending; the drain and the guard own it.
    pub(super) fn new(writer: Box<dyn Write + Send>, limits: Limits, root: OwnedKVList) -> Shared {
        Shared {
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
            root,
        }
    }

    /// On a worker: appends one line, or counts it dropped. Never waits on the output.
    pub(super) fn append(&self, line: &[u8]) {
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
    pub(super) fn wait_for_lines(&self) -> bool {
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
    pub(super) fn flush(&self) {
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
    pub(super) fn release(&self) {
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

#[cfg(test)]
impl Shared {
    /// Bytes pending and lines dropped since the last flush.
    pub(super) fn pending_state(&self) -> (usize, u64) {
        let pending = lock(&self.pending);
        (pending.lines.len(), pending.dropped)
    }

    /// Lines a failed write lost, not yet reported.
    pub(super) fn lost(&self) -> u64 {
        lock(&self.output).lost
    }
}
