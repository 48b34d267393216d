//! Governance of the data plane: who may call how often, how much at once, how many tokens, and
//! which models. [`Governor`] holds the live state (rate limiters, concurrency counts, the token
//! book, the global in-flight count, failed authentications per address in [`auth_failures`]);
//! [`crate::domain::KeyPolicy`] the rules loaded with the key ring; [`models`] the model registry.
//!
//! Order of checks, cheapest first: request rate (every `/v1` request, in middleware, before the
//! body is read), then for a Responses call the global in-flight cap, key and tenant
//! concurrency, and token quotas ([`Governor::admit`]). The [`Admission`] it returns holds the
//! slots for as long as the request or its stream lives and records the usage at the end.

pub mod auth_failures;
pub mod catalog_view;
pub mod headers;
pub mod metrics;
pub mod model_info;
pub mod model_refresh;
pub mod models;
pub mod quota;
pub mod rate;
pub mod requests;
pub mod updates;
mod usage_writer;
pub mod websockets;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use slog::Logger;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::Notify;

use self::auth_failures::AuthFailures;
use self::metrics::GovernanceMetrics;
use self::quota::{QuotaBook, TokenStatus, WindowUse};
use self::rate::{RateBook, RateStatus};
use crate::domain::Usage;
use crate::domain::{KeyPolicy, Limits};
use crate::domain::{Scope, Subject};
use crate::settings::LimitSettings;
use crate::store::{Operation, Store, StoreError};

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Over the request rate of the key or its tenant.
    Rate { scope: Scope, retry_after: Duration },
    /// Too many requests of the key or its tenant in progress.
    Concurrency { scope: Scope, limit: u32 },
    /// A token quota of the key or its tenant is spent until its window turns.
    Quota { scope: Scope, retry_after: Duration },
    /// The relay's global cap on upstream calls in flight is reached.
    Overloaded,
}

/// The live state of every limit; cheap to clone.
#[derive(Clone)]
pub struct Governor(Arc<Inner>);

struct Inner {
    /// Swapped whole by a settings reload; read once per check, without a lock.
    settings: ArcSwap<LimitSettings>,
    rates: RateBook,
    auth_failures: AuthFailures,
    quotas: Mutex<QuotaBook>,
    concurrent: Mutex<HashMap<Subject, u32>>,
    in_flight: AtomicUsize,
    /// Usage on its way to the store (see [`usage_writer`]).
    usage_out: UnboundedSender<UsageRecord>,
    /// Records sent and not yet written, so a stopping server can wait for them.
    pending: Arc<Pending>,
    metrics: GovernanceMetrics,
}

/// Usage records not yet written; the writer wakes [`Governor::flush_usage`] when none are left.
#[derive(Default)]
pub(crate) struct Pending {
    count: AtomicUsize,
    drained: Notify,
}

impl Pending {
    fn done(&self, records: usize) {
        if self.count.fetch_sub(records, Ordering::SeqCst) == records {
            self.drained.notify_waiters();
        }
    }
}

/// One finished call's usage, for the store.
#[derive(Debug)]
pub struct UsageRecord {
    pub subjects: Vec<Subject>,
    pub day: String,
    pub usage: Usage,
}

/// What the limits of one request looked like when it was admitted (for the response headers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitSnapshot {
    pub requests: Option<RateStatus>,
    pub tokens: Option<TokenStatus>,
}

impl Governor {
    /// Builds the governor with this day's and month's usage read from the store, and starts
    /// the task that writes new usage to the store; it counts into `metrics` (registered by
    /// [`GovernanceMetrics::register`]). Must run inside the actix system.
    pub async fn load(
        settings: LimitSettings,
        store: Store,
        log: Logger,
        metrics: GovernanceMetrics,
    ) -> Result<Governor, StoreError> {
        let now = Utc::now();
        let (day, month) = (quota::day_key(now), quota::month_key(now));
        let totals = store
            .run(Operation::Read, move |s| s.usage_totals(&day, &month))
            .await?;
        let writer_errors = metrics.usage_writer_errors.clone();
        let book = QuotaBook::new(now, totals);
        let (governor, usage) = Governor::with_metrics(settings, book, metrics);
        let pending = Arc::clone(&governor.0.pending);
        usage_writer::spawn(usage, pending, store, writer_errors, log);
        Ok(governor)
    }

    /// A governor over `book`, counting into metrics registered nowhere; what it records
    /// arrives on the returned receiver.
    pub fn new(
        settings: LimitSettings,
        book: QuotaBook,
    ) -> (Governor, UnboundedReceiver<UsageRecord>) {
        Governor::with_metrics(settings, book, GovernanceMetrics::default())
    }

    fn with_metrics(
        settings: LimitSettings,
        book: QuotaBook,
        metrics: GovernanceMetrics,
    ) -> (Governor, UnboundedReceiver<UsageRecord>) {
        let (usage_out, usage_in) = unbounded_channel();
        let inner = Inner {
            auth_failures: AuthFailures::new(&settings),
            settings: ArcSwap::from_pointee(settings),
            rates: RateBook::default(),
            quotas: Mutex::new(book),
            concurrent: Mutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            usage_out,
            pending: Arc::default(),
            metrics,
        };
        (Governor(Arc::new(inner)), usage_in)
    }

    /// The subjects a key's request counts against, with their limits.
    fn subjects<'a>(&self, key: &'a KeyPolicy) -> Vec<(Subject, &'a Limits)> {
        let mut subjects = vec![((Scope::Key, Arc::clone(&key.id)), &key.limits)];
        if let Some(tenant) = &key.tenant {
            let id: Arc<str> = Arc::from(tenant.id.as_str());
            subjects.push(((Scope::Tenant, id), &tenant.limits));
        }
        subjects
    }

    /// Counts one request against the key's and tenant's request rates. On success, the
    /// tighter of the two (or none when neither has a rate); on refusal, why and the status of
    /// the rate that refused.
    pub fn check_rate(
        &self,
        key: &KeyPolicy,
    ) -> Result<Option<RateStatus>, (Rejection, RateStatus)> {
        let mut tightest: Option<RateStatus> = None;
        let default_key_rpm = self.0.settings.load().default_key_rpm;
        for (subject, limits) in self.subjects(key) {
            let rpm = match (subject.0, limits.rpm) {
                (_, Some(rpm)) => rpm,
                (Scope::Key, None) if default_key_rpm > 0 => default_key_rpm,
                _ => continue,
            };
            let burst = limits.burst.unwrap_or(rpm);
            match self.0.rates.check(&subject, rpm, burst) {
                Ok(status) if tightest.is_none_or(|t| status.remaining < t.remaining) => {
                    tightest = Some(status);
                }
                Ok(_) => {}
                Err(denied) => {
                    let rejection = Rejection::Rate {
                        scope: subject.0,
                        retry_after: denied.retry_after,
                    };
                    self.0.metrics.rejected(key, &rejection);
                    return Err((rejection, denied.status));
                }
            }
        }
        Ok(tightest)
    }

    /// The tightest token quota of the key and its tenant, without counting anything.
    pub fn token_status(&self, key: &KeyPolicy, now: DateTime<Utc>) -> Option<TokenStatus> {
        let mut book = self.0.quotas.lock().unwrap_or_else(|e| e.into_inner());
        self.subjects(key)
            .into_iter()
            .filter_map(|(subject, limits)| {
                quota::check(limits, book.used(&subject, now), now).unwrap_or_else(Some)
            })
            .min_by_key(|s| s.remaining)
    }

    /// The day's and the month's token quota use of the key and its tenant (the higher share of
    /// the two, per window), without counting anything: the limits a Codex client shows.
    pub fn quota_windows(&self, key: &KeyPolicy, now: DateTime<Utc>) -> [Option<WindowUse>; 2] {
        let has_quota = |l: &Limits| l.daily_tokens.is_some() || l.monthly_tokens.is_some();
        let tenant_quota = key.tenant.as_ref().is_some_and(|t| has_quota(&t.limits));
        if !has_quota(&key.limits) && !tenant_quota {
            // Most keys: no lock, no lookup on the request path.
            return [None, None];
        }
        let mut book = self.0.quotas.lock().unwrap_or_else(|e| e.into_inner());
        let mut windows = [None, None];
        for (subject, limits) in self.subjects(key) {
            let uses = quota::window_use(limits, book.used(&subject, now), now);
            for (slot, new) in windows.iter_mut().zip(uses) {
                let higher = |w: &WindowUse| new.is_some_and(|n| n.used_percent > w.used_percent);
                if slot.is_none() || slot.as_ref().is_some_and(higher) {
                    *slot = new.or(*slot);
                }
            }
        }
        windows
    }

    /// Admits one upstream call: global cap, then concurrency, then token quotas. The returned
    /// [`Admission`] holds the slots until it is dropped.
    pub fn admit(&self, key: &Arc<KeyPolicy>, now: DateTime<Utc>) -> Result<Admission, Rejection> {
        let admitted = self.try_admit(key, now);
        match &admitted {
            Ok(_) => self.0.metrics.admitted(key),
            Err(rejection) => self.0.metrics.rejected(key, rejection),
        }
        admitted
    }

    fn try_admit(&self, key: &Arc<KeyPolicy>, now: DateTime<Utc>) -> Result<Admission, Rejection> {
        let mut admission = Admission {
            governor: self.clone(),
            key: Arc::clone(key),
            held: Vec::new(),
            global: false,
        };
        let max = self.0.settings.load().max_in_flight;
        if self.0.in_flight.fetch_add(1, Ordering::SeqCst) >= max {
            self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err(Rejection::Overloaded);
        }
        admission.global = true;
        self.take_concurrency(&mut admission)?;
        self.check_quotas(key, now)?;
        Ok(admission)
    }

    fn take_concurrency(&self, admission: &mut Admission) -> Result<(), Rejection> {
        let mut counts = self.0.concurrent.lock().unwrap_or_else(|e| e.into_inner());
        let key = Arc::clone(&admission.key);
        for (subject, limits) in self.subjects(&key) {
            let count = counts.entry(subject.clone()).or_default();
            if let Some(limit) = limits.max_concurrent {
                if *count >= limit {
                    return Err(Rejection::Concurrency {
                        scope: subject.0,
                        limit,
                    });
                }
            }
            *count += 1;
            admission.held.push(subject);
        }
        Ok(())
    }

    fn check_quotas(&self, key: &KeyPolicy, now: DateTime<Utc>) -> Result<(), Rejection> {
        let mut book = self.0.quotas.lock().unwrap_or_else(|e| e.into_inner());
        for (subject, limits) in self.subjects(key) {
            if let Err(spent) = quota::check(limits, book.used(&subject, now), now) {
                return Err(Rejection::Quota {
                    scope: subject.0,
                    retry_after: spent.reset,
                });
            }
        }
        Ok(())
    }

    /// Adds a finished call's tokens to the key's and tenant's quotas, in memory at once and in
    /// the store in the background. Never blocks and never fails: it may run in a `Drop`.
    fn record(&self, key: &KeyPolicy, usage: Usage, now: DateTime<Utc>) {
        self.0.metrics.used(key, &usage);
        let subjects: Vec<Subject> = self.subjects(key).into_iter().map(|(s, _)| s).collect();
        {
            let mut book = self.0.quotas.lock().unwrap_or_else(|e| e.into_inner());
            for subject in &subjects {
                book.add(subject, usage.total_tokens, now);
            }
        }
        let record = UsageRecord {
            subjects,
            day: quota::day_key(now),
            usage,
        };
        // Counted before it is sent, so a flush that starts now waits for it.
        self.0.pending.count.fetch_add(1, Ordering::SeqCst);
        if self.0.usage_out.send(record).is_err() {
            self.0.pending.done(1);
        }
    }

    /// Waits until every usage record sent so far is in the store, or `within` has passed
    /// (then says so). A stopping server calls it after its last request has ended, so the
    /// tokens of the calls it finished are not lost with the process.
    pub async fn flush_usage(&self, within: Duration) -> bool {
        let pending = &self.0.pending;
        let drained = async {
            loop {
                // Registered before the count is read: a wake-up in between is not missed.
                let notified = pending.drained.notified();
                if pending.count.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        actix_web::rt::time::timeout(within, drained).await.is_ok()
    }

    /// Tokens `(today, this month)` of a key or tenant, as the quotas count them.
    pub fn used(&self, scope: Scope, id: &str, now: DateTime<Utc>) -> (u64, u64) {
        let mut book = self.0.quotas.lock().unwrap_or_else(|e| e.into_inner());
        book.used(&(scope, Arc::from(id)), now)
    }

    /// Forgets the request rates of every key and tenant not in `live` (called after each read
    /// of the key ring, so revoked keys and deleted tenants do not hold memory until restart).
    /// Concurrency counts need no pruning: a count leaves the map when its last call ends.
    /// Token counts are kept: they are small, and a key whose expiry is extended must find its
    /// usage still counted.
    pub fn forget_all_but(&self, live: &HashSet<Subject>) {
        self.0.rates.retain(|subject| live.contains(subject));
    }

    /// Applies new `limits.*` (a settings reload): the next check counts against them. Calls
    /// in flight keep their slots; an address's failures counted so far stay counted.
    pub fn set_limits(&self, limits: LimitSettings) {
        self.0.auth_failures.reconfigure(&limits);
        self.0.settings.store(Arc::new(limits));
    }

    /// Failed authentications per client address (both planes).
    pub fn auth_failures(&self) -> &AuthFailures {
        &self.0.auth_failures
    }

    /// Subjects with a request-rate limiter in memory (for tests).
    pub fn rate_subjects(&self) -> usize {
        self.0.rates.len()
    }

    /// Upstream calls in flight now (for tests and health).
    pub fn in_flight(&self) -> usize {
        self.0.in_flight.load(Ordering::SeqCst)
    }
}

/// One admitted upstream call: holds its concurrency slots and its place under the global cap
/// until dropped, which may be long after the handler returned (a stream).
pub struct Admission {
    governor: Governor,
    key: Arc<KeyPolicy>,
    held: Vec<Subject>,
    global: bool,
}

impl Admission {
    /// Counts a completed response's usage against the quotas.
    pub fn record_usage(&self, usage: Usage) {
        self.governor.record(&self.key, usage, Utc::now());
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let inner = &self.governor.0;
        if self.global {
            inner.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        let mut counts = inner.concurrent.lock().unwrap_or_else(|e| e.into_inner());
        for subject in &self.held {
            if let Some(count) = counts.get_mut(subject) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(subject);
                }
            }
        }
    }
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("key", &self.key.id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
