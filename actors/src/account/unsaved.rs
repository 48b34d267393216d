//! A rotated token set the store could not take (locked past its busy timeout, disk full). The
//! issuer has already spent the refresh token the store holds, so this set is the account's only
//! way back in: the actor keeps it, serves its access token, writes it again after backoff pauses
//! until the write lands, and presents its refresh token to the next refresh (never the spent
//! one). Refreshes and writes take turns (`flight.rs`), so neither overtakes the other.
//!
//! ```text
//!   refresh ──stored──────────────────────────────────────────► (nothing held)
//!      │
//!      └─write failed──► held ──write (after a pause)──stored──► (nothing held)
//!                        │  ▲  └──failed: pause, write again──┘
//!                        │  └── refresh with its refresh token, answer stored over it
//!                        └───── a newer login stored meanwhile: dropped, the login serves
//! ```
//!
//! A stopping actor lets what is in flight finish and writes a held set once more (bounded by
//! `RefreshPolicy::wait`); a set still held when it stops is reported to the refresher, which
//! says loudly that the account will need a new login.

use actix::{ActorContext, ActorFutureExt, AsyncContext, Context, SpawnHandle, WrapFuture};
use tokio::sync::oneshot;

use super::call::CallCredentials;
use super::AccountActor;
use crate::ports::SaveAttempt;
use crate::state::refresh::{Failure, RefreshPolicy, Retry};
use crate::types::RefreshedTokens;

/// The held set and the pauses between its writes.
pub(super) struct Unsaved {
    pub(super) tokens: Option<RefreshedTokens>,
    retry: Retry,
    /// The next write, when one is scheduled.
    timer: Option<SpawnHandle>,
    /// Set once the actor was asked to stop: whether the last write was tried, and who waits
    /// for the stop.
    stopping: Option<Stopping>,
}

struct Stopping {
    last_write_tried: bool,
    told: Vec<oneshot::Sender<()>>,
}

impl Unsaved {
    pub(super) fn new(policy: &RefreshPolicy) -> Unsaved {
        Unsaved {
            tokens: None,
            retry: Retry::new(policy),
            timer: None,
            stopping: None,
        }
    }

    /// The store has a set at least as new (or the login is gone): nothing to keep.
    pub(super) fn forget(&mut self, policy: &RefreshPolicy) {
        self.tokens = None;
        self.retry = Retry::new(policy);
    }
}

impl AccountActor {
    /// The token version the store holds: the one a held set replaces, else the actor's own.
    pub(super) fn stored_token_version(&self) -> i64 {
        self.flight
            .unsaved
            .tokens
            .as_ref()
            .map_or(self.credentials.token_version, |t| t.replaces_version)
    }

    /// The issuer rotated the tokens and the store refused them: keep the set and serve its
    /// access token under the version it will be stored as. One the actor cannot send (unfit
    /// for a header) is not served: that refresh failed, and is retried with the held set.
    pub(super) fn keep_unsaved(
        &mut self,
        tokens: RefreshedTokens,
        error: String,
        ctx: &mut Context<Self>,
    ) -> Result<(), super::lease::Refusal> {
        let serves = tokens.access_token.is_some();
        if let Some(access_token) = &tokens.access_token {
            let credentials = &mut self.credentials;
            credentials.access_token = access_token.clone();
            credentials.expires_at = tokens.expires_at.or(credentials.expires_at);
            credentials.last_refresh = Some(tokens.refreshed_at);
            credentials.plan = tokens.plan.clone().or(credentials.plan.take());
            credentials.token_version = tokens.replaces_version + 1;
            self.call = CallCredentials::of(credentials);
        }
        self.flight.unsaved.tokens = Some(tokens);
        self.publish();
        if serves {
            self.counts.refreshes.unsaved += 1;
            self.flight.succeeded(&self.config.refresh);
            Ok(())
        } else {
            self.refresh_failed(Failure::Transient { error }, ctx)
        }
    }

    /// What follows a refresh or a write: a refresh asked for meanwhile, else the next write of a
    /// held set after a pause; when stopping, the last write and then the stop.
    pub(super) fn after_flight(&mut self, ctx: &mut Context<Self>) {
        if self.flight.running.is_some() {
            return;
        }
        if self.flight.unsaved.stopping.is_some() {
            self.flight.refresh_queued = false;
            self.wind_down(ctx);
        } else if std::mem::take(&mut self.flight.refresh_queued) {
            self.start_refresh(ctx, true);
        } else {
            self.schedule_save(ctx);
        }
    }

    fn schedule_save(&mut self, ctx: &mut Context<Self>) {
        let unsaved = &mut self.flight.unsaved;
        if unsaved.tokens.is_none() || unsaved.timer.is_some() {
            return;
        }
        let pause = unsaved.retry.next_delay(&self.config.refresh);
        unsaved.timer = Some(ctx.run_later(pause, |act, ctx| {
            act.flight.unsaved.timer = None;
            act.start_save(ctx);
        }));
    }

    /// Writes the held set now, unless a refresh or a write runs (which ends in `after_flight`).
    fn start_save(&mut self, ctx: &mut Context<Self>) {
        let Some(tokens) = self.flight.unsaved.tokens.clone() else {
            return;
        };
        if self.flight.running.is_some() {
            return;
        }
        self.flight.start_save();
        let write = self
            .config
            .refresher
            .save(self.credentials.id.clone(), tokens);
        ctx.spawn(
            write
                .into_actor(self)
                .map(|saved, act, ctx| act.finish_save(saved, ctx)),
        );
    }

    fn finish_save(&mut self, saved: SaveAttempt, ctx: &mut Context<Self>) {
        self.flight.running = None;
        match saved {
            SaveAttempt::Stored(credentials) | SaveAttempt::Superseded(credentials) => {
                self.flight.unsaved.forget(&self.config.refresh);
                self.take_credentials(credentials);
                self.publish();
            }
            SaveAttempt::Gone => self.flight.unsaved.forget(&self.config.refresh),
            // The refresher has said why; the set stays and is written again after a pause.
            SaveAttempt::Failed(_) => {}
        }
        self.after_flight(ctx);
    }

    /// Asked to stop: the answer comes once the actor has stopped — after what is in flight has
    /// ended and a held set was written once more, or after `RefreshPolicy::wait` at most.
    pub(super) fn retire(&mut self, ctx: &mut Context<Self>) -> oneshot::Receiver<()> {
        let (told, stopped) = oneshot::channel();
        let unsaved = &mut self.flight.unsaved;
        match &mut unsaved.stopping {
            Some(stopping) => stopping.told.push(told),
            None => {
                unsaved.stopping = Some(Stopping {
                    last_write_tried: false,
                    told: vec![told],
                });
                if let Some(timer) = unsaved.timer.take() {
                    ctx.cancel_future(timer);
                }
                ctx.run_later(self.config.refresh.wait, |_, ctx| ctx.stop());
                self.wind_down(ctx);
            }
        }
        stopped
    }

    fn wind_down(&mut self, ctx: &mut Context<Self>) {
        if self.flight.running.is_some() {
            return;
        }
        let held = self.flight.unsaved.tokens.is_some();
        let last_write = match self.flight.unsaved.stopping.as_mut() {
            Some(stopping) if held && !stopping.last_write_tried => {
                stopping.last_write_tried = true;
                true
            }
            _ => false,
        };
        if last_write {
            self.start_save(ctx);
        } else {
            ctx.stop();
        }
    }

    /// The actor has stopped: a set still held is lost with it, and those waiting are told.
    pub(super) fn stopped_with_unsaved(&mut self) {
        if self.flight.unsaved.tokens.is_some() {
            self.config
                .refresher
                .unsaved_at_stop(self.credentials.id.clone());
        }
        if let Some(stopping) = self.flight.unsaved.stopping.take() {
            for told in stopping.told {
                let _ = told.send(());
            }
        }
    }
}
