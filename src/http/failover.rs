//! The attempt loop of `POST /v1/responses`: lease an account, call the upstream, and while
//! nothing has reached the client, move the request to another account when this one fails —
//! a connect error or timeout, 401/403, 429, 5xx, or a `response.failed` (overload, slow down,
//! limits) inside a 200 stream before any output item. At most `routing.max_attempts` accounts,
//! with a jittered, growing pause between attempts (`backoff` crate).
//!
//! An upstream 401 is first answered on the same account: one refresh of its token
//! (single-flight) and one retry (`renewal.rs`); only a 401 after that moves the request on.
//!
//! Every attempt's lease reports its outcome (and what the upstream said about the account)
//! before the next one is acquired, so the router already knows the account is cooling — except
//! a failure the breaker would count, which waits for the next attempt to show whether it was the
//! account's or the request's (`attribution.rs`): the same failure on a second account ends the
//! failover with that error and charges neither. When no account is left, the client gets the
//! pool's verdict — one 429 `usage_limit_reached` with the earliest reset when every account is
//! cooling, else a relay error — never one account's answer passed through.
//!
//! The loop logs nothing of its own attempts: it returns, with its result, their record
//! (`attempts.rs`, with how long each step took), from which the handler writes the access line
//! and the failover warnings.

mod attempts;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::HttpRequest;
use awc::error::{ConnectError, SendRequestError};
use backoff::backoff::Backoff;
use backoff::{ExponentialBackoff, ExponentialBackoffBuilder};
use bytes::Bytes;
use relay_actors::{
    AccountId, Acquire, AcquireError, JudgeExhaustion, Lease, Outcome, UpstreamFacts,
};
use slog::warn;

pub use self::attempts::Attempts;
use self::attempts::{AttemptEnd, AttemptRecord, FailoverReason, Stopwatch, UpstreamAnswer};
use super::attribution::{Ending, Judge, Judged, Signature};
use super::encrypted::explain;
use super::error::ApiError;
use super::renewal::{not_renewed, send_renewing_on_401, Sent};
use super::transport::Via;
use crate::edge::context::RequestContext;
use crate::state::AppState;
use crate::upstream::drift::Drift;
use crate::upstream::headers::text;
use crate::upstream::holdback::{self, Held, Limits, Verdict};
use crate::upstream::rate_limits::{error_facts, snapshot};
use crate::upstream::shown_limits::ShownLimits;
use crate::upstream::sse::StreamWatcher;
use crate::upstream::{UpstreamClient, UpstreamResponse};

/// Largest upstream error body the relay reads (it is summarized, never echoed).
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// The request as the loop needs it.
pub struct Call<'a> {
    pub req: &'a HttpRequest,
    pub payload: Bytes,
    /// The upstream slug (an alias already resolved).
    pub model: &'a str,
    /// Plans whose accounts do not serve the model (the model registry's routing by plan).
    pub exclude_plans: &'a [String],
    pub affinity: Option<String>,
    /// The caller's limits, shown in place of the backend's `codex.rate_limits` events.
    pub shown_limits: ShownLimits,
    /// The request replays encrypted reasoning, which only its own account can read.
    pub carries_encrypted: bool,
    /// The account that wrote the remembered items the request was expanded with (`recall`).
    pub written_by: Option<AccountId>,
    /// How the request goes upstream: over HTTP, or as a WebSocket turn.
    pub via: Via<'a>,
    /// The only account that can serve the request: a WebSocket turn that continues a response
    /// made on its connection's upstream socket. Placed anywhere else, it is answered
    /// `previous_response_not_found`, as the backend answers a response it does not know.
    pub pinned: Option<AccountId>,
}

/// The account that answers: its upstream response, its lease, and the held start of the stream.
pub struct Committed {
    pub response: UpstreamResponse,
    pub lease: Lease,
    pub held: Held,
}

/// Why one attempt failed over.
enum Failure {
    Transport,
    Timeout,
    /// A non-200 answer, and the relay's error for it.
    Status(StatusCode, ApiError),
    FailedInStream(Option<String>),
}

enum Attempt {
    Committed(Box<Committed>),
    /// Another account may serve; how the attempt ended is the judge's to report.
    Failed(Failure, Option<Box<Ending>>),
    /// The request itself is at fault (e.g. a 400): no other account would answer otherwise.
    Final(ApiError),
}

impl Attempt {
    /// A failed attempt whose lease the judge reports (`signature`: see `attribution.rs`).
    fn failed(
        failure: Failure,
        lease: Lease,
        outcome: Outcome,
        signature: Option<Signature>,
    ) -> Attempt {
        let ending = Ending {
            lease,
            outcome,
            signature,
        };
        Attempt::Failed(failure, Some(Box::new(ending)))
    }
}

/// Tries accounts until one answers or the failover ends, and returns how it ended with the
/// record of every attempt (for the access line and the log, which the caller writes).
pub async fn run(
    state: &AppState,
    upstream: &UpstreamClient,
    call: &Call<'_>,
    ctx: &RequestContext,
) -> (Result<Committed, ApiError>, Attempts) {
    let mut failover = Failover {
        pause: pause_between_attempts(state.settings().routing.retry_backoff_ms),
        last: None,
        judge: Judge::default(),
        attempts: Attempts::new(),
    };
    let result = failover.until_done(state, upstream, call, ctx).await;
    (result, failover.attempts)
}

/// What the loop carries from one attempt to the next.
struct Failover {
    pause: ExponentialBackoff,
    /// The last failure, for the client's error if no account is left.
    last: Option<Failure>,
    judge: Judge,
    /// Every attempt so far; the accounts in it are not tried again.
    attempts: Attempts,
}

/// `Some` when the failover ends: with the answering account, or the client's error.
type Done = Option<Result<Committed, ApiError>>;

impl Failover {
    async fn until_done(
        &mut self,
        state: &AppState,
        upstream: &UpstreamClient,
        call: &Call<'_>,
        ctx: &RequestContext,
    ) -> Result<Committed, ApiError> {
        for attempt in 1..=state.settings().routing.max_attempts {
            if attempt > 1 {
                self.pause().await;
            }
            let waiting = Instant::now();
            let lease = acquire(state, call, &self.attempts).await;
            let leased = Instant::now();
            self.attempts.waited_for_lease(leased - waiting);
            let lease = match lease {
                Ok(lease) => lease,
                Err(error) => {
                    self.settle().await;
                    return Err(exhausted(error, self.last.take()));
                }
            };
            if call.pinned.as_ref().is_some_and(|a| *a != lease.account_id) {
                drop(lease);
                self.settle().await;
                return Err(ApiError::previous_response_not_found());
            }
            let leased = (lease, leased);
            if let Some(done) = self.attempt(state, upstream, call, leased, ctx).await {
                return done;
            }
        }
        self.settle().await;
        let verdict = pool_verdict(state, call).await;
        Err(exhausted(verdict, self.last.take()))
    }

    async fn pause(&mut self) {
        if let Some(wait) = self.pause.next_backoff().filter(|w| !w.is_zero()) {
            let began = Instant::now();
            actix_web::rt::time::sleep(wait).await;
            self.attempts.paused(began.elapsed());
        }
    }

    /// One account's attempt with the lease that came at `leased`, recorded.
    async fn attempt(
        &mut self,
        state: &AppState,
        upstream: &UpstreamClient,
        call: &Call<'_>,
        (lease, leased): (Lease, Instant),
        ctx: &RequestContext,
    ) -> Done {
        let account_id = lease.account_id.clone();
        let placement = lease.placement.clone();
        let mut stopwatch = Stopwatch::start_at(leased);
        let (attempt, answer) =
            try_account(state, upstream, call, lease, ctx, &mut stopwatch).await;
        let (end, done) = match attempt {
            Attempt::Committed(committed) => {
                self.settle().await;
                (AttemptEnd::Committed, Some(Ok(*committed)))
            }
            Attempt::Final(error) => {
                self.settle().await;
                (AttemptEnd::Final, Some(Err(error)))
            }
            Attempt::Failed(failure, ending) => self.failed(failure, ending, call).await,
        };
        let times = match end {
            AttemptEnd::Committed | AttemptEnd::Final => stopwatch.stop_answered(),
            _ => stopwatch.stop(),
        };
        self.attempts.push(AttemptRecord {
            account_id,
            placement,
            answer,
            end,
            times,
        });
        done
    }

    /// Judges a failed attempt: the request moves on, or the failover stops with its error.
    async fn failed(
        &mut self,
        failure: Failure,
        ending: Option<Box<Ending>>,
        call: &Call<'_>,
    ) -> (AttemptEnd, Done) {
        let reason = failure.reason();
        if self.judge.failed(ending.map(|e| *e)).await == Judged::RequestAtFault {
            return (
                AttemptEnd::RequestAtFault(reason),
                Some(Err(failure.into_error())),
            );
        }
        self.last = Some(failure);
        if self.judge.holds() && nests_too_deep(call) {
            std::mem::take(&mut self.judge).acquit().await;
            return (AttemptEnd::TooDeep(reason), Some(Err(too_deep())));
        }
        (AttemptEnd::FailedOver(reason), None)
    }

    /// The request ended otherwise than by its own fault: a failure still held was its account's.
    async fn settle(&mut self) {
        std::mem::take(&mut self.judge).settle().await;
    }
}

/// The router's word on a pool where every attempt failed: every account cooling, or none usable.
async fn pool_verdict(state: &AppState, call: &Call<'_>) -> AcquireError {
    state
        .router()
        .send(JudgeExhaustion {
            exclude_plans: call.exclude_plans.to_vec(),
        })
        .await
        .unwrap_or(AcquireError::NoUsableAccount)
}

/// The jittered pause before each attempt after the first, growing from `initial_ms`.
fn pause_between_attempts(initial_ms: u64) -> ExponentialBackoff {
    ExponentialBackoffBuilder::new()
        .with_initial_interval(Duration::from_millis(initial_ms))
        .with_randomization_factor(0.5)
        .with_multiplier(2.0)
        .with_max_elapsed_time(None)
        .build()
}

async fn acquire(
    state: &AppState,
    call: &Call<'_>,
    tried: &Attempts,
) -> Result<Lease, AcquireError> {
    let request = Acquire {
        model: call.model.to_owned(),
        affinity: call.affinity.clone(),
        exclude: tried.accounts().cloned().collect(),
        exclude_plans: call.exclude_plans.to_vec(),
        written_by: call.written_by.clone(),
        pinned: call.pinned.clone(),
    };
    state.leases().acquire(request).await
}

/// Calls the upstream with `lease`; returns how the attempt went and the status line, if any.
async fn try_account(
    state: &AppState,
    upstream: &UpstreamClient,
    call: &Call<'_>,
    lease: Lease,
    ctx: &RequestContext,
    stopwatch: &mut Stopwatch,
) -> (Attempt, Option<UpstreamAnswer>) {
    let headers = call.req.headers();
    let via = (upstream, &call.via);
    let sent = send_renewing_on_401(via, lease, headers, call.payload.clone(), ctx).await;
    stopwatch.head();
    let (lease, response) = match sent {
        Sent::Answered(lease, response) => (lease, response),
        Sent::NotRenewed(refusal) => {
            let error = not_renewed(&refusal, ctx);
            let failure = Failure::Status(StatusCode::UNAUTHORIZED, error);
            return (Attempt::Failed(failure, None), None);
        }
        Sent::Unreachable(lease, error) => return (unreachable(lease, &error, ctx), None),
    };
    state.drift().headers(response.headers());
    let answer = UpstreamAnswer {
        status: response.status().as_u16(),
        request_id: text(response.headers(), "x-request-id").map(str::to_owned),
    };
    let attempt = match response.status() {
        StatusCode::OK => {
            let watcher = StreamWatcher::new(state.drift().clone(), call.shown_limits);
            let attempt = hold_back(state, lease, response, watcher).await;
            stopwatch.held_back();
            attempt
        }
        _ => refused(lease, response, call, ctx, state.drift()).await,
    };
    (attempt, Some(answer))
}

/// The request did not get an answer (no status line).
fn unreachable(lease: Lease, error: &SendRequestError, ctx: &RequestContext) -> Attempt {
    warn!(ctx.log, "upstream request failed"; "error" => error.to_string());
    let (failure, outcome) = match error {
        SendRequestError::Timeout => (Failure::Timeout, Outcome::TimedOut),
        _ => (Failure::Transport, Outcome::TransportFailed),
    };
    Attempt::failed(failure, lease, outcome, unanswered_signature(error))
}

/// What an attempt without a status line looks like beside the next account's (`attribution.rs`);
/// `None` for a connection that could not be opened: the body never left, so this cannot be the
/// request's failure.
fn unanswered_signature(error: &SendRequestError) -> Option<Signature> {
    match error {
        SendRequestError::Timeout => Some(Signature::Timeout),
        // awc also calls a connection that ended after the request went, before its status
        // line, a connect error: a drop like any other (sent twice by then,
        // `upstream::closed_unanswered`).
        SendRequestError::Connect(ConnectError::Disconnected) => Some(Signature::Dropped),
        SendRequestError::Connect(_) => None,
        _ => Some(Signature::Dropped),
    }
}

/// A non-200 answer: another account may serve, or the request itself is at fault.
async fn refused(
    mut lease: Lease,
    mut response: UpstreamResponse,
    call: &Call<'_>,
    ctx: &RequestContext,
    drift: &Drift,
) -> Attempt {
    let status = response.status();
    let body = response
        .body()
        .limit(ERROR_BODY_LIMIT)
        .await
        .unwrap_or_default();
    let facts = error_facts(response.headers(), &body, SystemTime::now());
    if let Some(code) = &facts.error_code {
        drift.error_code(code);
    }
    let signature = Signature::Status {
        status: status.as_u16(),
        code: facts.error_code.clone(),
    };
    lease.observe(facts);
    let error = super::upstream_error::map(status, response.headers(), &body, ctx);
    let error = explain(error, call.carries_encrypted, &lease, ctx);
    let outcome = Outcome::Completed {
        status: status.as_u16(),
    };
    if !fails_over(status) {
        lease.finish(outcome).await;
        return Attempt::Final(error);
    }
    Attempt::failed(
        Failure::Status(status, error),
        lease,
        outcome,
        Some(signature),
    )
}

/// A 200 stream: held back until its first output item, unless it fails before any.
async fn hold_back(
    state: &AppState,
    mut lease: Lease,
    mut response: UpstreamResponse,
    watcher: StreamWatcher,
) -> Attempt {
    lease.observe(UpstreamFacts {
        rate_limits: snapshot(response.headers(), SystemTime::now()),
        ..UpstreamFacts::default()
    });
    let routing = &state.settings().routing;
    let limits = Limits {
        max_bytes: routing.hold_back_bytes,
        max_wait: Duration::from_millis(routing.hold_back_ms),
    };
    // The response memory reads the answer's output items from the events the watcher sees.
    let watcher = match state.settings().responses.memory.enabled {
        true => watcher.keeping_outputs(),
        false => watcher,
    };
    let held = holdback::hold_back(&mut response, limits, watcher).await;
    match &held.verdict {
        Verdict::Cut => Attempt::failed(
            Failure::Transport,
            lease,
            Outcome::TransportFailed,
            Some(Signature::Cut),
        ),
        Verdict::FailedBeforeOutput { code } if stream_failure_fails_over(code.as_deref()) => {
            lease.observe(UpstreamFacts {
                error_code: code.clone(),
                ..UpstreamFacts::default()
            });
            let signature = Signature::FailedInStream(code.clone());
            let failure = Failure::FailedInStream(code.clone());
            Attempt::failed(failure, lease, Outcome::FailedBeforeOutput, Some(signature))
        }
        // A failure of the request itself (context too long, policy…) reaches the client as is.
        Verdict::FailedBeforeOutput { .. } | Verdict::Commit => {
            Attempt::Committed(Box::new(Committed {
                response,
                lease,
                held,
            }))
        }
    }
}

/// Whether the body nests deeper than the relay's own parsers read (`nesting.rs`): asked only
/// once an account has failed the request, since a scan of every body would cost every request.
fn nests_too_deep(call: &Call<'_>) -> bool {
    crate::nesting::deeper_than(&call.payload, crate::nesting::MAX_DEPTH)
}

fn too_deep() -> ApiError {
    ApiError::InvalidRequest {
        message: format!(
            "The JSON body of your request nests arrays and objects more than {} levels deep.",
            crate::nesting::MAX_DEPTH
        ),
        param: None,
        code: Some("json_nesting_too_deep"),
    }
}

/// Statuses that say "this account, now" rather than "this request": another account may serve.
fn fails_over(status: StatusCode) -> bool {
    matches!(status.as_u16(), 401 | 403 | 408 | 429 | 500..=599)
}

/// `response.failed` codes (before any output) that another account may not share.
fn stream_failure_fails_over(code: Option<&str>) -> bool {
    matches!(
        code,
        None | Some(
            "server_is_overloaded"
                | "slow_down"
                | "server_error"
                | "rate_limit_exceeded"
                | "usage_limit_reached"
        )
    )
}

/// The client's error once no account is left: the pool's verdict first (every account cooling
/// → one 429 with the earliest reset), else the relay's own error for the last failure.
fn exhausted(verdict: AcquireError, last: Option<Failure>) -> ApiError {
    if let AcquireError::AllCooling { until, usage_limit } = verdict {
        let wait = until.duration_since(SystemTime::now()).unwrap_or_default();
        // Rounded up: a client that waits exactly this long finds an account again.
        let retry_after_secs = Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        if !usage_limit {
            return ApiError::UpstreamRateLimited { retry_after_secs };
        }
        let resets_at = until
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_secs()).ok());
        return ApiError::UsageLimitReached {
            retry_after_secs: retry_after_secs.map(|s| s.max(1)),
            resets_at,
        };
    }
    match (last, verdict) {
        (Some(failure), _) => failure.into_error(),
        (None, AcquireError::EmptyPool) => ApiError::NoAccounts,
        (None, AcquireError::Busy) => ApiError::PoolBusy,
        (None, _) => ApiError::NoUsableAccount,
    }
}

impl Failure {
    /// The relay's own error for the last failure of a request.
    fn into_error(self) -> ApiError {
        match self {
            Failure::Transport => ApiError::UpstreamFailed("the upstream could not be reached"),
            Failure::Timeout => ApiError::UpstreamTimeout,
            // Limited accounts while others are left untried: the next request goes to those.
            Failure::Status(status, _) if status == StatusCode::TOO_MANY_REQUESTS => {
                ApiError::NoUsableAccount
            }
            Failure::Status(_, error) => error,
            Failure::FailedInStream(code) => ApiError::ResponseFailed {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "The upstream is overloaded; every account the relay tried failed the response before any output. Try again shortly.".to_owned(),
                code: Some(code.unwrap_or_else(|| "server_is_overloaded".to_owned())),
            },
        }
    }

    /// What the attempt record keeps of it.
    fn reason(&self) -> FailoverReason {
        match self {
            Failure::Transport => FailoverReason::Transport,
            Failure::Timeout => FailoverReason::Timeout,
            Failure::Status(status, _) => FailoverReason::Status(status.as_u16()),
            Failure::FailedInStream(code) => FailoverReason::FailedInStream(code.clone()),
        }
    }
}

#[cfg(test)]
mod tests;
