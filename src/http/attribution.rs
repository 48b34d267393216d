//! Whose failure is it: the account's or the request's. A failure the breaker would count (a
//! 5xx, a dropped connection or stream, a timeout, an overload inside a stream) is held back from
//! its account while the request tries another one. If that account answers, or fails in another
//! way, the held failure was its account's and is charged as it would have been at once. If it
//! fails the same way, the failure followed the request — a body the upstream chokes on, whichever
//! account sends it — so the failover stops there and neither account is charged: one client
//! cannot open every account's breaker with requests that fail everywhere.
//!
//! Failures that say something of the account itself are never held: 401/403 (its login), 429 and
//! usage limits (its quota), and a connection that could not be opened (the body never left).

use relay_actors::{Lease, Outcome};

/// What a failure looks like, to tell whether two accounts failed the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// An HTTP error status, with the upstream's error code or type.
    Status { status: u16, code: Option<String> },
    /// The connection failed after the request was sent, before a status arrived.
    Dropped,
    /// A 200 stream ended or broke off before any output.
    Cut,
    /// No status, or no event, within the time allowed.
    Timeout,
    /// `response.failed` before any output, with its code.
    FailedInStream(Option<String>),
}

/// How one failed attempt ended: its lease, not yet reported, and what it would report.
pub struct Ending {
    pub lease: Lease,
    pub outcome: Outcome,
    /// `None` for a failure that can only be the account's (see the module comment).
    pub signature: Option<Signature>,
}

/// The judgement of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judged {
    /// Another account may serve: the failover goes on.
    MoveOn,
    /// The failure repeated the last one: the request is at fault and goes no further.
    RequestAtFault,
}

/// One request's judge: holds the last failure the breaker would count until the next attempt
/// shows whose it was. A judge dropped with a failure held (the client left meanwhile) drops its
/// lease, which reports it abandoned: that charges nothing.
#[derive(Default)]
pub struct Judge {
    held: Option<Held>,
}

/// A failed attempt whose account is not told yet.
struct Held {
    lease: Lease,
    outcome: Outcome,
    signature: Signature,
}

impl Held {
    /// It was the account's failure: reported as it happened.
    async fn charge(self) {
        self.lease.finish(self.outcome).await;
    }

    /// It was the request's: reported as such, which the account's health does not count.
    async fn acquit(self) {
        self.lease.finish(Outcome::RequestAtFault).await;
    }
}

impl Judge {
    /// Judges a failed attempt against the failure held from the attempt before it. `None`: an
    /// attempt that failed without a lease to report (its token could not be renewed).
    pub async fn failed(&mut self, ending: Option<Ending>) -> Judged {
        let signature = ending.as_ref().and_then(|e| e.signature.as_ref());
        match self.held.take() {
            Some(held) if signature == Some(&held.signature) => {
                held.acquit().await;
                if let Some(ending) = ending {
                    ending.lease.finish(Outcome::RequestAtFault).await;
                }
                return Judged::RequestAtFault;
            }
            Some(held) => held.charge().await,
            None => {}
        }
        if let Some(Ending {
            lease,
            outcome,
            signature,
        }) = ending
        {
            match signature.filter(|_| lease.counts_as_failure(outcome)) {
                Some(signature) => {
                    self.held = Some(Held {
                        lease,
                        outcome,
                        signature,
                    })
                }
                None => lease.finish(outcome).await,
            }
        }
        Judged::MoveOn
    }

    /// Whether a failure is held, waiting for the next attempt.
    pub fn holds(&self) -> bool {
        self.held.is_some()
    }

    /// The relay found the request at fault itself: a failure still held was the request's.
    pub async fn acquit(self) {
        if let Some(held) = self.held {
            held.acquit().await;
        }
    }

    /// The request ended otherwise (an account answered, the request's own error, no account
    /// left): a failure still held was its account's.
    pub async fn settle(self) {
        if let Some(held) = self.held {
            held.charge().await;
        }
    }
}
