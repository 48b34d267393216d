//! Single-flight refresh for one account. At most one refresh runs at a time; requests that need
//! its result join it as waiters (bounded by `RefreshPolicy::wait`), so however many requests
//! arrive during a refresh, the token endpoint is called once. After a transient failure the
//! next attempt waits out an exponential backoff pause, retried in the background while the
//! current token still serves. A refresh never runs beside a write of a rotated set the store
//! has not taken (`unsaved.rs`): asked for during one, it starts when the write ends, so it
//! presents the refresh token that write leaves live.

use std::time::Instant;

use actix::{ActorFutureExt, AsyncContext, Context, ResponseActFuture, WrapFuture};
use tokio::sync::oneshot;

use super::lease::{Lease, Refusal};
use super::unsaved::Unsaved;
use super::{unix_now, AccountActor};
use crate::ports::RefreshAttempt;
use crate::state::refresh::{self, Failure, RefreshPolicy, Retry};
use crate::state::AccountEvent;

type Done = Result<(), Refusal>;

/// What is in flight for the account's tokens: one token call or one store write, never both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Running {
    Refresh,
    /// A write of the unsaved set.
    Save,
}

/// The refresh bookkeeping of one account.
pub(super) struct Flight {
    pub(super) running: Option<Running>,
    /// A refresh asked for while a write ran: it starts when the write ends.
    pub(super) refresh_queued: bool,
    waiters: Vec<oneshot::Sender<Done>>,
    retry: Retry,
    /// No new attempt before this (after a transient failure), unless forced.
    not_before: Option<Instant>,
    last_error: String,
    /// When the last refresh brought new tokens (bounds proactive refreshes).
    succeeded_at: Option<Instant>,
    /// The rotated set the store has not taken yet, if any.
    pub(super) unsaved: Unsaved,
}

impl Flight {
    pub(super) fn new(policy: &RefreshPolicy) -> Flight {
        Flight {
            running: None,
            refresh_queued: false,
            waiters: Vec::new(),
            retry: Retry::new(policy),
            not_before: None,
            last_error: String::new(),
            succeeded_at: None,
            unsaved: Unsaved::new(policy),
        }
    }

    /// New tokens: forget past failures.
    pub(super) fn reset(&mut self, policy: &RefreshPolicy) {
        self.retry = Retry::new(policy);
        self.not_before = None;
    }

    /// The issuer has just answered with new tokens that serve.
    pub(super) fn succeeded(&mut self, policy: &RefreshPolicy) {
        self.reset(policy);
        self.succeeded_at = Some(Instant::now());
    }

    /// A write of the unsaved set starts (the caller has checked that nothing runs).
    pub(super) fn start_save(&mut self) {
        self.running = Some(Running::Save);
    }

    pub(super) fn is_refreshing(&self) -> bool {
        self.running == Some(Running::Refresh)
    }

    /// A refresh runs, or starts when the running write ends.
    fn refresh_pending(&self) -> bool {
        self.is_refreshing() || self.refresh_queued
    }

    fn pausing(&self) -> bool {
        self.not_before.is_some_and(|t| Instant::now() < t)
    }
}

/// What a waiter learns: the refresh's result, or that it did not finish within the wait.
pub(super) fn settled(
    result: Result<Result<Done, oneshot::error::RecvError>, tokio::time::error::Elapsed>,
) -> Done {
    match result {
        Ok(Ok(done)) => done,
        Ok(Err(_dropped)) => Err(Refusal::Unusable("gone")),
        Err(_elapsed) => Err(Refusal::RefreshPending),
    }
}

impl AccountActor {
    /// A refresh ahead of expiry, unless the last success is more recent than
    /// `RefreshPolicy::min_interval` (the current token still serves meanwhile).
    pub(super) fn start_proactive_refresh(&mut self, ctx: &mut Context<Self>) {
        let policy = &self.config.refresh;
        if refresh::proactive_allowed(self.flight.succeeded_at, Instant::now(), policy) {
            self.start_refresh(ctx, false);
        }
    }

    /// Starts a refresh unless one is running or a retry pause holds (`force` ignores the pause);
    /// during a write of the unsaved set, it is queued behind the write.
    pub(super) fn start_refresh(&mut self, ctx: &mut Context<Self>, force: bool) {
        if self.flight.is_refreshing() || (!force && self.flight.pausing()) {
            return;
        }
        if self.flight.running.is_some() {
            self.flight.refresh_queued = true;
            return;
        }
        self.flight.running = Some(Running::Refresh);
        let attempt = self.config.refresher.refresh(
            self.credentials.id.clone(),
            self.stored_token_version(),
            self.flight.unsaved.tokens.clone(),
        );
        ctx.spawn(
            attempt
                .into_actor(self)
                .map(|attempt, act, ctx| act.finish_refresh(attempt, ctx)),
        );
    }

    /// The result of the running refresh, starting one if needed. Inside a retry pause (and not
    /// forced) the answer is the last failure, at once.
    pub(super) fn join_refresh(
        &mut self,
        ctx: &mut Context<Self>,
        force: bool,
    ) -> oneshot::Receiver<Done> {
        let (tx, rx) = oneshot::channel();
        self.start_refresh(ctx, force);
        if self.flight.refresh_pending() {
            self.flight.waiters.push(tx);
        } else {
            let _ = tx.send(Err(Refusal::RefreshFailed(self.flight.last_error.clone())));
        }
        rx
    }

    /// Waits (bounded) for a refresh, then grants a lease on the new token.
    pub(super) fn grant_after_refresh(
        &mut self,
        ctx: &mut Context<Self>,
        force: bool,
    ) -> ResponseActFuture<Self, Result<Lease, Refusal>> {
        let done = self.join_refresh(ctx, force);
        let wait = self.config.refresh.wait;
        Box::pin(
            async move { tokio::time::timeout(wait, done).await }
                .into_actor(self)
                .map(|result, act, ctx| {
                    settled(result)?;
                    act.grant(ctx)
                }),
        )
    }

    fn finish_refresh(&mut self, attempt: RefreshAttempt, ctx: &mut Context<Self>) {
        self.flight.running = None;
        let done = match attempt {
            RefreshAttempt::Refreshed(credentials) | RefreshAttempt::Superseded(credentials) => {
                self.counts.refreshes.ok += 1;
                self.flight.unsaved.forget(&self.config.refresh);
                self.take_credentials(credentials);
                self.flight.succeeded(&self.config.refresh);
                self.publish();
                Ok(())
            }
            RefreshAttempt::Unsaved { tokens, error } => self.keep_unsaved(tokens, error, ctx),
            RefreshAttempt::Rejected { status, code } => {
                self.refresh_failed(refresh::classify(status, code.as_deref()), ctx)
            }
            RefreshAttempt::Failed(error) => self.refresh_failed(Failure::Transient { error }, ctx),
            RefreshAttempt::Gone => {
                self.flight.unsaved.forget(&self.config.refresh);
                Err(Refusal::Unusable("gone"))
            }
        };
        for waiter in self.flight.waiters.drain(..) {
            let _ = waiter.send(done.clone());
        }
        self.after_flight(ctx);
    }

    /// A permanent failure takes the account out at once and is persisted with its reason; a
    /// transient one is noted, paused on, and retried in the background while the token serves.
    pub(super) fn refresh_failed(&mut self, failure: Failure, ctx: &mut Context<Self>) -> Done {
        self.counts.refreshes.failed(&failure);
        let id = self.credentials.id.clone();
        match failure {
            Failure::Permanent { reason } => {
                // The login is dead, and with it any set the store has not taken.
                let version = self.stored_token_version();
                self.credentials.token_version = version;
                self.flight.unsaved.forget(&self.config.refresh);
                let persist = self
                    .config
                    .refresher
                    .reauth_required(id, version, reason.clone());
                ctx.spawn(persist.into_actor(self));
                self.apply(AccountEvent::RefreshRejected {
                    reason: reason.clone(),
                });
                self.publish();
                Err(Refusal::RefreshFailed(reason))
            }
            Failure::Transient { error } => {
                ctx.spawn(
                    self.config
                        .refresher
                        .failed(id, self.stored_token_version(), error.clone())
                        .into_actor(self),
                );
                let delay = self.flight.retry.next_delay(&self.config.refresh);
                self.flight.not_before = Some(Instant::now() + delay);
                self.flight.last_error.clone_from(&error);
                if refresh::retry_in_background(self.credentials.expires_at, unix_now(), delay) {
                    ctx.run_later(delay, |act, ctx| act.start_refresh(ctx, false));
                }
                Err(Refusal::RefreshFailed(error))
            }
        }
    }
}
