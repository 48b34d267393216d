//! The record of one request's attempts: for each account tried, how the router placed the
//! lease, what the upstream answered, how long its call took and how the attempt ended, with the
//! time spent waiting for leases and pausing between attempts. The failover loop writes it and
//! returns it with its result; the handler takes from it the access line's upstream fields and
//! phases and the log lines that tell an operator how the request went from account to account,
//! so both say the same thing — and counts each attempt on its account's metric families.

use std::fmt;
use std::time::{Duration, Instant};

use relay_actors::{AccountId, Placement};
use slog::{warn, Logger};

use crate::edge::phases::Phases;
use crate::obs::{bounded, limit};
use crate::pool::metrics::{CallStatus, PoolMetrics};

/// Every attempt of one request, in order, and the time between their upstream calls.
#[derive(Debug)]
pub struct Attempts {
    records: Vec<AttemptRecord>,
    /// Waiting for leases: every attempt's, and that of an acquire that found no account.
    lease_wait: Duration,
    /// The pauses before each attempt after the first.
    paused: Duration,
}

/// One attempt: which account, how its lease was placed, what the upstream said, how it ended.
#[derive(Debug)]
pub struct AttemptRecord {
    pub account_id: AccountId,
    pub placement: Placement,
    /// `None` when no status line came back, or the token could not be renewed after a 401.
    pub answer: Option<UpstreamAnswer>,
    pub end: AttemptEnd,
    pub times: UpstreamTimes,
}

/// How long one attempt's upstream call took, each from the moment the request was sent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamTimes {
    /// To the upstream's response head, or the send failing (a 401 renewed and sent again
    /// included).
    pub head: Duration,
    /// To the end of a 200 stream's hold-back: its start ready, or the attempt failed.
    pub start: Option<Duration>,
    /// To the end of the attempt: its outcome judged.
    pub total: Duration,
}

/// Times one attempt's upstream call.
pub(super) struct Stopwatch {
    sent: Instant,
    times: UpstreamTimes,
}

impl Stopwatch {
    /// Started at `sent`, the moment the lease came (the request is sent right after): one
    /// clock read ends the lease wait and starts the call.
    pub(super) fn start_at(sent: Instant) -> Stopwatch {
        Stopwatch {
            sent,
            times: UpstreamTimes::default(),
        }
    }

    pub(super) fn head(&mut self) {
        self.times.head = self.sent.elapsed();
    }

    pub(super) fn held_back(&mut self) {
        self.times.start = Some(self.sent.elapsed());
    }

    pub(super) fn stop(mut self) -> UpstreamTimes {
        self.times.total = self.sent.elapsed();
        self.times
    }

    /// Stopped without reading the clock, for an attempt whose answer reaches the client: it is
    /// the last, and only the attempts before the last have their totals read (the failover
    /// phase). Its total is its last mark.
    pub(super) fn stop_answered(mut self) -> UpstreamTimes {
        self.times.total = self.times.start.unwrap_or(self.times.head);
        self.times
    }
}

/// The upstream's status line, as far as the access log tells it.
#[derive(Debug, PartialEq, Eq)]
pub struct UpstreamAnswer {
    pub status: u16,
    /// The upstream's `x-request-id`, when it is text.
    pub request_id: Option<String>,
}

/// How an attempt ended.
#[derive(Debug, PartialEq, Eq)]
pub enum AttemptEnd {
    /// This account answers the client.
    Committed,
    /// The upstream's answer is the request's own (a 400, say): it reaches the client as is.
    Final,
    /// The account failed; the request went on to another account, if one was left.
    FailedOver(FailoverReason),
    /// The account failed the way the one before it did: the request is at fault, and the
    /// failover stops (`attribution.rs`).
    RequestAtFault(FailoverReason),
    /// The account failed a body nesting deeper than the relay reads: the relay refuses it
    /// instead of trying another account.
    TooDeep(FailoverReason),
}

/// Why an account failed a request before anything reached the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailoverReason {
    /// The connection failed, or a 200 stream broke off before any output.
    Transport,
    Timeout,
    /// A status that says "this account, now" (401 after renewal, 403, 429, 5xx…).
    Status(u16),
    /// `response.failed` inside a 200 stream before any output, with its code.
    FailedInStream(Option<String>),
}

impl FailoverReason {
    /// One stable name per kind, whatever the status or code: a bounded label for counting.
    pub fn name(&self) -> &'static str {
        match self {
            FailoverReason::Transport => "upstream_unreachable",
            FailoverReason::Timeout => "upstream_timeout",
            FailoverReason::Status(_) => "upstream_status",
            FailoverReason::FailedInStream(_) => "failed_in_stream",
        }
    }
}

/// The `reason` of the log lines: the name, with the status (`upstream_status_429`) or the
/// stream's code (`failed_in_stream:slow_down`, bounded) that operators' queries match on.
impl fmt::Display for FailoverReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailoverReason::Status(status) => write!(f, "{}_{status}", self.name()),
            FailoverReason::FailedInStream(code) => {
                let code = code.as_deref().unwrap_or("unknown");
                write!(f, "{}:{}", self.name(), bounded(code, limit::UPSTREAM_TEXT))
            }
            FailoverReason::Transport | FailoverReason::Timeout => f.write_str(self.name()),
        }
    }
}

impl Attempts {
    /// Room for the one attempt most requests make, and no more until a failover needs it.
    pub(super) fn new() -> Attempts {
        Attempts {
            records: Vec::with_capacity(1),
            lease_wait: Duration::ZERO,
            paused: Duration::ZERO,
        }
    }

    pub(super) fn push(&mut self, record: AttemptRecord) {
        self.records.push(record);
    }

    pub(super) fn waited_for_lease(&mut self, took: Duration) {
        self.lease_wait += took;
    }

    pub(super) fn paused(&mut self, took: Duration) {
        self.paused += took;
    }

    /// The accounts tried so far, in order.
    pub fn accounts(&self) -> impl Iterator<Item = &AccountId> {
        self.records.iter().map(|record| &record.account_id)
    }

    /// The last attempt, the one the access line speaks of: the account that answered the
    /// client, or the last one that failed.
    pub fn into_last(self) -> Option<AttemptRecord> {
        self.records.into_iter().last()
    }

    /// The failover's phases: the lease waits, the attempts before the last with the pauses
    /// between attempts (`failover`), and the last attempt's upstream head and held-back start —
    /// the attempt whose account and answer the access line names.
    pub fn phases(&self, phases: &mut Phases) {
        phases.lease = Some(self.lease_wait);
        phases.attempts = Some(u32::try_from(self.records.len()).unwrap_or(u32::MAX));
        let (last, earlier) = match self.records.split_last() {
            Some((last, earlier)) => (Some(last), earlier),
            None => (None, &[][..]),
        };
        let failed: Duration = earlier.iter().map(|record| record.times.total).sum();
        phases.failover = Some(failed + self.paused);
        phases.upstream_connect = last.map(|record| record.times.head);
        phases.upstream_first_byte = last.and_then(|record| record.times.start);
    }

    /// Counts each attempt on its account: the upstream call by how it ended, and the request
    /// leaving the account, if it did.
    pub fn count(&self, metrics: &PoolMetrics) {
        for record in &self.records {
            if let Some(status) = record.call_status() {
                metrics.count_call(&record.account_id, status);
            }
            if let AttemptEnd::FailedOver(reason) = &record.end {
                metrics.count_failover(&record.account_id, reason.name());
            }
        }
    }

    /// Writes what an operator should know of each attempt: a conversation moved off its
    /// account, and every attempt that failed over or stopped the failover.
    pub fn log(&self, log: &Logger, carries_encrypted: bool) {
        for (at, record) in self.records.iter().enumerate() {
            record.log_placement(log, carries_encrypted);
            record.log_end(log, at + 1);
        }
    }
}

impl AttemptRecord {
    /// How the attempt's upstream call ended: its status line, else why none came (a 401 whose
    /// token could not be renewed keeps its status).
    pub(super) fn call_status(&self) -> Option<CallStatus> {
        if let Some(answer) = &self.answer {
            return Some(CallStatus::Status(answer.status));
        }
        match &self.end {
            AttemptEnd::FailedOver(reason)
            | AttemptEnd::RequestAtFault(reason)
            | AttemptEnd::TooDeep(reason) => match reason {
                FailoverReason::Transport => Some(CallStatus::Transport),
                FailoverReason::Timeout => Some(CallStatus::Timeout),
                FailoverReason::Status(status) => Some(CallStatus::Status(*status)),
                FailoverReason::FailedInStream(_) => None,
            },
            AttemptEnd::Committed | AttemptEnd::Final => None,
        }
    }

    /// A conversation that had to leave its account (moves are also counted by the router).
    /// Encrypted reasoning only its own account can read makes either a conscious, visible choice.
    fn log_placement(&self, log: &Logger, carries_encrypted: bool) {
        let account_id = &self.account_id;
        match &self.placement {
            Placement::Moved { from } => {
                warn!(log, "conversation moved to another account: its account cannot serve";
                    "from_account_id" => %from, "account_id" => %account_id,
                    "carries_encrypted_content" => carries_encrypted);
            }
            Placement::Detour { bound } if carries_encrypted => {
                warn!(log, "conversation with encrypted content tried on another account for this request";
                    "bound_account_id" => %bound, "account_id" => %account_id);
            }
            _ => {}
        }
    }

    /// `attempt` counts from 1.
    fn log_end(&self, log: &Logger, attempt: usize) {
        let account_id = &self.account_id;
        match &self.end {
            AttemptEnd::FailedOver(reason) => {
                warn!(log, "upstream attempt failed; the request moves to another account";
                    "attempt" => attempt, "account_id" => %account_id, "reason" => %reason);
            }
            AttemptEnd::RequestAtFault(reason) => {
                warn!(log, "the upstream failed this request the same way on two accounts: the request is at fault; no other account is tried and neither is charged";
                    "attempt" => attempt, "account_id" => %account_id, "reason" => %reason);
            }
            AttemptEnd::TooDeep(_) => {
                warn!(log, "the upstream failed a body nesting deeper than the relay reads; it is refused instead of trying another account, and the account is not charged";
                    "max_depth" => crate::nesting::MAX_DEPTH);
            }
            AttemptEnd::Committed | AttemptEnd::Final => {}
        }
    }
}
