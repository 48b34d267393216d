//! Pure selection: which accounts to try, in which order, for one request; and, when none can
//! serve, why not. Time is passed in through the candidates and `now`.
//!
//! Order: accounts that serve normally before half-open ones (those take one probe call only);
//! higher `priority` first; within one priority the strategy decides:
//! - `headroom` (default): most quota left in the tightest window (in 5-point buckets, scaled by
//!   `weight`), then fewest calls in flight — so near-equal accounts share the load;
//! - `round_robin`: turns rotate across requests; an account with weight *w* takes *w* turns;
//! - `fill_first`: the pool's order (oldest account first) — one account is used until it is full
//!   or unusable, which keeps the others' quota for later.
//!
//! Accounts at their `max_in_flight` are left out; they would refuse anyway.

use std::time::SystemTime;

use crate::account::messages::AccountView;
use crate::config::Strategy;
use crate::state::health::{Availability, CoolingReason};
use crate::state::AuthState;
use crate::types::AccountId;

/// Most turns one account takes in a round-robin cycle, whatever its weight.
const MAX_TURNS: u32 = 100;
/// Headroom is compared in buckets of this many percent.
const HEADROOM_BUCKET: f64 = 5.0;

/// An account as selection sees it: its view, and its calls in flight as of now (the view's own
/// count may lag; the router's members read it live from the account's gate).
pub trait Candidate {
    fn view(&self) -> &AccountView;

    fn in_flight(&self) -> usize {
        self.view().in_flight
    }

    fn is_full(&self) -> bool {
        let max = self.view().max_in_flight;
        max > 0 && self.in_flight() >= max
    }
}

impl Candidate for &AccountView {
    fn view(&self) -> &AccountView {
        self
    }
}

/// The accounts to try, best first. `candidates` are in the pool's order; `cursor` turns the
/// round-robin rotation.
pub fn order<'c, C: Candidate>(
    candidates: &'c [C],
    strategy: Strategy,
    cursor: usize,
    exclude: &[AccountId],
    now: SystemTime,
) -> Vec<&'c C> {
    let mut eligible: Vec<&C> = candidates
        .iter()
        .filter(|c| is_eligible(*c, exclude, now))
        .collect();
    // Stable sort: the pool's order breaks every tie.
    eligible.sort_by_key(|c| rank(*c, now));
    let mut ordered = Vec::with_capacity(eligible.len());
    for group in eligible.chunk_by(|a, b| rank(*a, now) == rank(*b, now)) {
        ordered.extend(order_group(group, strategy, cursor));
    }
    ordered
}

/// The first account of [`order`], found in one pass without ordering the rest: a lease taken
/// on a request's own thread needs only that one, at every request.
pub fn best<C: Candidate + Copy>(
    candidates: impl Iterator<Item = C>,
    strategy: Strategy,
    cursor: usize,
    exclude: &[AccountId],
    now: SystemTime,
) -> Option<C> {
    let eligible = candidates.filter(|c| is_eligible(c, exclude, now));
    match strategy {
        Strategy::FillFirst => eligible.min_by_key(|c| rank(c, now)),
        // `min_by_key` keeps the first of equal keys: the pool's order breaks ties, as in `order`.
        Strategy::Headroom => eligible.min_by_key(|c| (rank(c, now), headroom_key(c))),
        Strategy::RoundRobin => {
            // Collected once: a live in-flight count read twice could leave the group empty.
            let eligible: Vec<C> = eligible.collect();
            let top = eligible.iter().map(|c| rank(c, now)).min()?;
            let group: Vec<C> = eligible
                .into_iter()
                .filter(|c| rank(c, now) == top)
                .collect();
            let total: usize = group.iter().map(turns).sum();
            let mut turn = cursor % total.max(1);
            group.into_iter().find(|c| {
                let taken = turn < turns(c);
                turn = turn.saturating_sub(turns(c));
                taken
            })
        }
    }
}

/// Whether a candidate may be tried at all: it serves at `now`, has a free slot and was not
/// tried by this request yet.
pub(crate) fn is_eligible<C: Candidate>(c: &C, exclude: &[AccountId], now: SystemTime) -> bool {
    c.view().serves_at(now) && !c.is_full() && !exclude.contains(&c.view().id)
}

/// Groups in the order they are tried: normal before half-open, then higher priority first.
fn rank<C: Candidate>(c: &C, now: SystemTime) -> (bool, std::cmp::Reverse<i32>) {
    let half_open = c.view().availability(now) == Availability::HalfOpen;
    (half_open, std::cmp::Reverse(c.view().routing.priority))
}

/// Headroom's order within a group, smallest first: most quota left (in buckets, scaled by
/// weight), then fewest calls in flight.
fn headroom_key<C: Candidate>(c: &C) -> (std::cmp::Reverse<u64>, usize) {
    let view = c.view();
    let bucket = (view.remaining_percent() / HEADROOM_BUCKET).floor() as u64;
    let score = bucket * u64::from(view.routing.weight.max(1));
    (std::cmp::Reverse(score), c.in_flight())
}

/// Turns one account takes in a round-robin cycle.
fn turns<C: Candidate>(c: &C) -> usize {
    c.view().routing.weight.clamp(1, MAX_TURNS) as usize
}

fn order_group<'c, C: Candidate>(group: &[&'c C], strategy: Strategy, cursor: usize) -> Vec<&'c C> {
    match strategy {
        Strategy::FillFirst => group.to_vec(),
        Strategy::Headroom => {
            let mut sorted = group.to_vec();
            // Each key is read once: a live in-flight count moves while the sort runs, and a key
            // that changes under a sort breaks its order (std's sort panics on it).
            sorted.sort_by_cached_key(|c| headroom_key(*c));
            sorted
        }
        Strategy::RoundRobin => {
            let turns: Vec<usize> = group
                .iter()
                .enumerate()
                .flat_map(|(at, c)| std::iter::repeat_n(at, turns(*c)))
                .collect();
            let start = cursor % turns.len().max(1);
            let mut seen: Vec<usize> = Vec::with_capacity(group.len());
            for &at in turns[start..].iter().chain(&turns[..start]) {
                if !seen.contains(&at) {
                    seen.push(at);
                }
            }
            seen.into_iter().map(|at| group[at]).collect()
        }
    }
}

/// Why no account could take a request, judged over the whole pool at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhaustion {
    /// The pool has no accounts.
    Empty,
    /// Every account the operator keeps active with a valid login is cooling: retry at `until`.
    /// `usage_limit` when they all reached their plan's usage limit (not merely a rate limit).
    AllCooling {
        until: SystemTime,
        usage_limit: bool,
    },
    /// Accounts could serve but all have their maximum of calls in flight.
    Busy,
    /// Nothing can serve for another reason (disabled, logins to renew, breakers open).
    NoneUsable,
}

pub fn exhaustion(views: &[&AccountView], now: SystemTime) -> Exhaustion {
    if views.is_empty() {
        return Exhaustion::Empty;
    }
    if views.iter().any(|v| v.serves_at(now) && v.is_full()) {
        return Exhaustion::Busy;
    }
    let in_service: Vec<&&AccountView> = views
        .iter()
        .filter(|v| v.state.is_usable() && v.state.auth == AuthState::Valid)
        .collect();
    let cooling: Vec<(SystemTime, CoolingReason)> = in_service
        .iter()
        .filter_map(|v| match v.availability(now) {
            Availability::Cooling { until, reason } => Some((until, reason)),
            _ => None,
        })
        .collect();
    match cooling.iter().map(|(until, _)| *until).min() {
        Some(until) if cooling.len() == in_service.len() => Exhaustion::AllCooling {
            until,
            usage_limit: cooling
                .iter()
                .all(|(_, reason)| *reason == CoolingReason::UsageLimit),
        },
        _ => Exhaustion::NoneUsable,
    }
}

#[cfg(test)]
mod tests;
