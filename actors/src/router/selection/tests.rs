use std::time::{Duration, SystemTime};

use super::*;
use crate::account::counts::AccountCounts;
use crate::state::health::{Breaker, Cooling, CoolingReason, Health};
use crate::state::quota::{QuotaSnapshot, QuotaWindow};
use crate::state::{AccountState, AdminState};
use crate::types::RoutingParams;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 + secs)
}

fn view(id: &str) -> AccountView {
    AccountView {
        id: AccountId::from(id),
        state: AccountState::initial(AdminState::Active),
        in_flight: 0,
        max_in_flight: 0,
        routing: RoutingParams::default(),
        quota: None,
        probing: false,
        refreshing: false,
        tokens_unsaved: false,
        last_error: None,
        token_expires_at: None,
        counts: AccountCounts::default(),
    }
}

fn used(mut v: AccountView, percent: f64) -> AccountView {
    v.quota = Some(QuotaSnapshot {
        primary: Some(QuotaWindow {
            used_percent: percent,
            window_minutes: Some(300),
            resets_at: None,
        }),
        secondary: None,
        observed_at: at(0),
    });
    v
}

fn cooling(mut v: AccountView, until: u64) -> AccountView {
    v.state.health.cooling = Some(Cooling {
        until: at(until),
        reason: CoolingReason::UsageLimit,
    });
    v
}

fn ids(order: Vec<&&AccountView>) -> Vec<String> {
    order.into_iter().map(|view| view.id.to_string()).collect()
}

fn run(views: &[AccountView], strategy: Strategy, cursor: usize) -> Vec<String> {
    let refs: Vec<&AccountView> = views.iter().collect();
    ids(order(&refs, strategy, cursor, &[], at(0)))
}

#[test]
fn headroom_prefers_most_quota_left_then_fewest_in_flight() {
    // b and c are in one headroom bucket (90–95 % left): fewer calls in flight wins.
    let mut busy = used(view("b"), 6.0);
    busy.in_flight = 3;
    let views = [used(view("a"), 80.0), busy, used(view("c"), 9.0)];
    assert_eq!(run(&views, Strategy::Headroom, 0), ["c", "b", "a"]);
    // Unknown quota counts as full headroom.
    let views = [used(view("a"), 30.0), view("b")];
    assert_eq!(run(&views, Strategy::Headroom, 0), ["b", "a"]);
}

#[test]
fn weight_scales_headroom() {
    let mut heavy = used(view("b"), 50.0);
    heavy.routing.weight = 3;
    let views = [used(view("a"), 0.0), heavy];
    assert_eq!(run(&views, Strategy::Headroom, 0), ["b", "a"]);
}

#[test]
fn round_robin_rotates_and_gives_weighted_turns() {
    let views = [view("a"), view("b"), view("c")];
    assert_eq!(run(&views, Strategy::RoundRobin, 0), ["a", "b", "c"]);
    assert_eq!(run(&views, Strategy::RoundRobin, 1), ["b", "c", "a"]);
    let mut double = view("a");
    double.routing.weight = 2;
    let views = [double, view("b")];
    let firsts: Vec<String> = (0..3)
        .map(|cursor| run(&views, Strategy::RoundRobin, cursor)[0].clone())
        .collect();
    assert_eq!(firsts, ["a", "a", "b"]);
}

#[test]
fn fill_first_keeps_the_pool_order() {
    let views = [used(view("a"), 90.0), view("b")];
    assert_eq!(run(&views, Strategy::FillFirst, 7), ["a", "b"]);
}

#[test]
fn higher_priority_goes_first_and_half_open_accounts_last() {
    let mut preferred = used(view("b"), 90.0);
    preferred.routing.priority = 5;
    let mut half_open = view("c");
    half_open.routing.priority = 9;
    half_open.state.health.breaker = Breaker::Open { until: at(0) };
    let views = [view("a"), preferred, half_open];
    assert_eq!(run(&views, Strategy::Headroom, 0), ["b", "a", "c"]);
}

#[test]
fn unusable_full_and_excluded_accounts_are_left_out() {
    let mut full = view("b");
    full.max_in_flight = 2;
    full.in_flight = 2;
    let mut probing = view("d");
    probing.state.health.breaker = Breaker::Open { until: at(0) };
    probing.probing = true;
    let views = [view("a"), full, cooling(view("c"), 10), probing, view("e")];
    let refs: Vec<&AccountView> = views.iter().collect();
    let excluded = [AccountId::from("e")];
    let order = ids(order(&refs, Strategy::Headroom, 0, &excluded, at(0)));
    assert_eq!(order, ["a"]);
}

#[test]
fn an_exhausted_pool_says_why() {
    let now = at(0);
    let judge = |views: &[AccountView]| {
        let refs: Vec<&AccountView> = views.iter().collect();
        exhaustion(&refs, now)
    };
    assert_eq!(judge(&[]), Exhaustion::Empty);
    let all_cooling = [cooling(view("a"), 50), cooling(view("b"), 20)];
    assert_eq!(
        judge(&all_cooling),
        Exhaustion::AllCooling {
            until: at(20),
            usage_limit: true
        }
    );
    // A disabled account does not count against "all cooling".
    let mut disabled = view("c");
    disabled.state = AccountState {
        health: Health::default(),
        ..AccountState::initial(AdminState::Disabled)
    };
    let with_disabled = [cooling(view("a"), 50), disabled];
    assert_eq!(
        judge(&with_disabled),
        Exhaustion::AllCooling {
            until: at(50),
            usage_limit: true
        }
    );
    let mut limited = cooling(view("b"), 10);
    limited.state.health.cooling.as_mut().unwrap().reason = CoolingReason::RateLimited;
    assert_eq!(
        judge(&[cooling(view("a"), 50), limited]),
        Exhaustion::AllCooling {
            until: at(10),
            usage_limit: false
        }
    );
    let mut open = view("b");
    open.state.health.breaker = Breaker::Open { until: at(30) };
    assert_eq!(
        judge(&[cooling(view("a"), 50), open]),
        Exhaustion::NoneUsable
    );
    let mut full = view("a");
    full.max_in_flight = 1;
    full.in_flight = 1;
    assert_eq!(judge(&[full]), Exhaustion::Busy);
}

/// A candidate whose live in-flight count moves every time it is read, as an account's does
/// while other workers take and free its slots.
struct Moving<'a> {
    view: AccountView,
    reads: &'a std::cell::Cell<usize>,
}

impl Candidate for Moving<'_> {
    fn view(&self) -> &AccountView {
        &self.view
    }

    fn in_flight(&self) -> usize {
        self.reads.set(self.reads.get() + 1);
        self.reads.get() % 7
    }
}

#[test]
fn a_live_count_is_read_once_per_account_for_the_order() {
    let reads = std::cell::Cell::new(0);
    let candidates: Vec<Moving> = (0..40)
        .map(|i| Moving {
            view: view(&format!("a{i}")),
            reads: &reads,
        })
        .collect();
    let ordered = order(&candidates, Strategy::Headroom, 0, &[], at(0));
    assert_eq!(ordered.len(), 40);
    // Once each for the sort (no cap, so the capacity check needs none), never again while
    // sorting: a sort that re-read it could see a different order at every comparison.
    assert_eq!(reads.get(), 40);
}

/// A small deterministic generator (no randomness in tests): the pools below vary in every
/// field selection reads.
struct Pools(u64);

impl Pools {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }

    fn pool(&mut self) -> Vec<AccountView> {
        (0..1 + self.next(12))
            .map(|i| {
                let mut v = used(view(&format!("a{i}")), (self.next(21) * 5) as f64);
                v.routing.priority = self.next(3) as i32;
                v.routing.weight = 1 + self.next(3) as u32;
                v.max_in_flight = [0, 2][self.next(2) as usize];
                v.in_flight = self.next(4) as usize;
                match self.next(6) {
                    0 => v.state.health.breaker = Breaker::Open { until: at(0) },
                    1 => v = cooling(v, 10),
                    _ => {}
                }
                v
            })
            .collect()
    }
}

#[test]
fn the_best_account_is_the_first_of_the_order() {
    let mut pools = Pools(7);
    let mut compared = 0;
    for _ in 0..2000 {
        let views = pools.pool();
        let excluded: Vec<AccountId> = views
            .iter()
            .filter(|_| pools.next(5) == 0)
            .map(|v| v.id.clone())
            .collect();
        let cursor = pools.next(1000) as usize;
        let refs: Vec<&AccountView> = views.iter().collect();
        for strategy in [
            Strategy::Headroom,
            Strategy::RoundRobin,
            Strategy::FillFirst,
        ] {
            let first = order(&refs, strategy, cursor, &excluded, at(0))
                .first()
                .map(|v| v.id.clone());
            let best = best(views.iter(), strategy, cursor, &excluded, at(0)).map(|v| v.id.clone());
            assert_eq!(best, first, "{strategy:?}, cursor {cursor}");
            compared += usize::from(first.is_some());
        }
    }
    // Most pools had an account to pick: the comparison was not between two `None`s.
    assert!(compared > 4000, "{compared}");
}
