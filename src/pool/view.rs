//! How operators see an account's pool state (the CLI's `account list --json` and the admin
//! account view): routing parameters, health (cooldown, breaker) and the last quota snapshot, as
//! JSON with RFC 3339 times; and the one state name the admin view and the metrics both show.
//! Never a credential.

use std::time::{SystemTime, UNIX_EPOCH};

use relay_actors::{
    AccountView, Availability, Breaker, Health, QuotaSnapshot, QuotaWindow, RoutingParams,
};
use serde_json::{json, Value};

use crate::store::{AccountSummary, PoolRow};

/// Every name [`shown_state`] gives: what keeps an account out of rotation, or `active`.
pub const ACCOUNT_STATES: [&str; 8] = [
    "active",
    "cooling",
    "circuit_open",
    "circuit_half_open",
    "reauth_required",
    "disabled",
    "draining",
    "unreadable",
];

/// The state operators see for an account (the admin API's `state`, the metrics'
/// `account_state`): tokens that do not open outrank whatever its actor says (it serves none of
/// them); an account the router has not started shows what the store says.
pub fn shown_state(
    row: &AccountSummary,
    live: Option<&AccountView>,
    now: SystemTime,
) -> &'static str {
    match live.filter(|_| row.unreadable.is_none()) {
        Some(view) => view.state.name_at(now),
        None => {
            let stored = row.shown_state();
            // An unknown stored state keeps the account out, as the actors read it.
            ACCOUNT_STATES
                .into_iter()
                .find(|name| *name == stored)
                .unwrap_or("disabled")
        }
    }
}

/// The stored pool row of an account (what the CLI sees, with or without a running server).
pub fn row_json(row: &PoolRow, now: SystemTime) -> Value {
    json!({
        "routing": routing_json(&row.routing),
        "health": health_json(&row.record.health, now),
        "quota": quota_json(row.record.quota.as_ref()),
    })
}

/// The live view of a running account (the admin plane): the stored parts plus the effective
/// cap on calls in flight (0: none).
pub fn live_json(view: &AccountView, now: SystemTime) -> Value {
    json!({
        "max_in_flight": view.max_in_flight,
        "routing": routing_json(&view.routing),
        "health": health_json(&view.state.health, now),
        "quota": quota_json(view.quota.as_ref()),
    })
}

fn routing_json(routing: &RoutingParams) -> Value {
    json!({
        "priority": routing.priority,
        "weight": routing.weight,
        "max_in_flight": routing.max_in_flight,
    })
}

/// `status` is `ready`, `cooling`, `circuit_open` or `circuit_half_open` at `now`.
pub fn health_json(health: &Health, now: SystemTime) -> Value {
    let status = match health.availability(now) {
        Availability::Ready => "ready",
        Availability::Cooling { .. } => "cooling",
        Availability::Open { .. } => "circuit_open",
        Availability::HalfOpen => "circuit_half_open",
    };
    let (breaker, failures, open_until) = match health.breaker {
        Breaker::Closed { failures } => ("closed", failures, None),
        Breaker::Open { until } => ("open", 0, Some(rfc3339(until))),
    };
    json!({
        "status": status,
        "cooling_until": health.cooling.map(|c| rfc3339(c.until)),
        "cooling_reason": health.cooling.map(|c| c.reason.name()),
        "breaker": breaker,
        "consecutive_failures": failures,
        "breaker_open_until": open_until,
        "breaker_openings": health.openings,
    })
}

fn quota_json(quota: Option<&QuotaSnapshot>) -> Value {
    let Some(quota) = quota else {
        return Value::Null;
    };
    let window = |w: &Option<QuotaWindow>| {
        w.map(|w| {
            json!({
                "used_percent": w.used_percent,
                "window_minutes": w.window_minutes,
                "resets_at": w.resets_at.map(rfc3339),
            })
        })
    };
    json!({
        "remaining_percent": quota.remaining_percent(),
        "primary": window(&quota.primary),
        "secondary": window(&quota.secondary),
        "observed_at": rfc3339(quota.observed_at),
    })
}

/// A time as RFC 3339 (UTC, seconds).
pub fn rfc3339(at: SystemTime) -> String {
    crate::store::rfc3339(unix_secs(at))
}

/// A time as whole seconds since the Unix epoch (0 before it).
pub fn unix_secs(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_actors::{Cooling, CoolingReason};
    use std::time::Duration;

    #[test]
    fn a_cooling_account_says_until_when_and_why() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let health = Health {
            cooling: Some(Cooling {
                until: now + Duration::from_secs(60),
                reason: CoolingReason::UsageLimit,
            }),
            ..Health::default()
        };
        let value = health_json(&health, now);
        assert_eq!(value["status"], "cooling");
        assert_eq!(value["cooling_reason"], "usage_limit");
        assert_eq!(value["cooling_until"], "2027-01-15T08:01:00Z");
        assert_eq!(value["breaker"], "closed");
        assert_eq!(
            health_json(&health, now + Duration::from_secs(61))["status"],
            "ready"
        );
    }
}
