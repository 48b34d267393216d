use std::time::{Duration, SystemTime};

use relay_actors::{
    AccountCounts, AccountId, AccountState, AccountView, AdminState, AuthState, Breaker, Cooling,
    CoolingReason, PoolStatus, RoutingParams,
};

use super::actor_counts::ActorCounts;
use super::by_account::AccountCounters;
use super::gauges::Gauges;
use super::labels::{Account, CallLabels, CallStatus};
use super::scrape::Sample;
use crate::obs::metrics::{encode_text, registry};
use crate::pool::view::{shown_state, ACCOUNT_STATES};
use crate::store::AccountSummary;

fn view(id: &str) -> AccountView {
    AccountView {
        id: AccountId::from(id),
        state: AccountState::initial(AdminState::Active),
        in_flight: 2,
        max_in_flight: 0,
        routing: RoutingParams::default(),
        quota: None,
        probing: false,
        refreshing: false,
        tokens_unsaved: false,
        last_error: None,
        token_expires_at: Some(1_900_000_000),
        counts: AccountCounts::default(),
    }
}

fn row(id: &str, state: &str) -> AccountSummary {
    AccountSummary {
        id: id.to_owned(),
        label: "ops-label".to_owned(),
        chatgpt_account_id: "chatgpt".to_owned(),
        email: Some("someone@example.com".to_owned()),
        plan: None,
        state: state.to_owned(),
        state_reason: None,
        token_expires_at: None,
        last_refresh: None,
        created_at: 0,
        reauth_reason: None,
        last_refresh_error: None,
        last_refresh_error_at: None,
        unreadable: None,
    }
}

#[test]
fn every_state_an_account_shows_is_one_the_families_know() {
    let now = SystemTime::now();
    let later = now + Duration::from_secs(60);
    let mut views = Vec::new();
    for admin in [
        AdminState::Active,
        AdminState::Disabled,
        AdminState::Draining,
    ] {
        for auth in [
            AuthState::Valid,
            AuthState::ReauthRequired { reason: "r".into() },
        ] {
            for breaker in [
                Breaker::Closed { failures: 0 },
                Breaker::Open { until: later },
                Breaker::Open { until: now },
            ] {
                let mut live = view("a");
                live.state = AccountState {
                    admin,
                    auth: auth.clone(),
                    ..live.state
                };
                live.state.health.breaker = breaker;
                views.push(live.clone());
                live.state.health.cooling = Some(Cooling {
                    until: later,
                    reason: CoolingReason::RateLimited,
                });
                views.push(live);
            }
        }
    }
    let mut shown: Vec<&str> = views
        .iter()
        .map(|live| shown_state(&row("a", "active"), Some(live), now))
        .collect();
    let mut unreadable = row("a", "active");
    unreadable.unreadable = Some("sealed under another key".to_owned());
    shown.push(shown_state(&unreadable, Some(&views[0]), now));
    for stored in ["active", "disabled", "draining", "something-else"] {
        shown.push(shown_state(&row("a", stored), None, now));
    }
    for name in &shown {
        assert!(ACCOUNT_STATES.contains(name), "{name}");
    }
    for name in ACCOUNT_STATES {
        assert!(shown.contains(&name), "{name} is never shown");
    }
}

fn sample(id: &str, live: Option<AccountView>) -> Sample {
    Sample {
        account: Account(AccountId::from(id)),
        state: "active",
        info: Some((r#"ops "west" \ 1"#.to_owned(), String::new())),
        token_expires_at: Some(1_900_000_000),
        live,
    }
}

#[test]
fn gauges_show_the_pool_of_the_last_scrape_only() {
    let mut registry = registry();
    let gauges = Gauges::register(&mut registry);
    let now = SystemTime::now();
    let mut cooled = view("acc_cooled");
    // A cooldown that has run out is no cooldown.
    cooled.state.health.cooling = Some(Cooling {
        until: now - Duration::from_secs(1),
        reason: CoolingReason::UsageLimit,
    });
    let pool = PoolStatus {
        accounts: 2,
        usable: 1,
        conversations: 3,
        ..PoolStatus::default()
    };
    gauges.fill(
        &[sample("acc_cooled", Some(cooled)), sample("acc_gone", None)],
        &pool,
        now,
    );
    let text = encode_text(&registry).unwrap();
    for line in [
        "codex_relay_account_cooldown_until_timestamp_seconds{account=\"acc_cooled\"} 0\n",
        "codex_relay_account_calls_in_flight{account=\"acc_cooled\"} 2\n",
        // Quotes and backslashes escaped: one bare quote would spoil the whole scrape.
        r#"codex_relay_account_info{account="acc_gone",label="ops \"west\" \\ 1",plan=""} 1"#,
        "codex_relay_pool_accounts{state=\"active\"} 2\n",
        "codex_relay_pool_usable_accounts 1\n",
        "codex_relay_pool_conversations_bound 3\n",
    ] {
        assert!(text.contains(line), "{line}{text}");
    }
    // Without its actor an account says nothing live; no quota reported, no quota series.
    assert!(
        !text.contains("calls_in_flight{account=\"acc_gone\""),
        "{text}"
    );
    assert!(!text.contains("quota"), "{text}");

    gauges.fill(&[sample("acc_cooled", None)], &pool, now);
    let text = encode_text(&registry).unwrap();
    assert!(!text.contains("acc_gone"), "{text}");
    assert!(text.contains("codex_relay_pool_accounts{state=\"active\"} 1\n"));
}

#[test]
fn actor_counts_are_counters_from_the_first_scrape_on() {
    let mut registry = registry();
    let counts = std::sync::Arc::new(ActorCounts::default());
    registry.register_collector(Box::new(std::sync::Arc::clone(&counts)));
    assert!(!encode_text(&registry).unwrap().contains("codex_relay_"));
    let mut seen = AccountCounts::default();
    seen.refreshes.rejected = 2;
    counts.store(vec![(Account(AccountId::from("acc_a")), seen)], 7);
    let text = encode_text(&registry).unwrap();
    for line in [
        "# TYPE codex_relay_account_refreshes counter\n",
        "codex_relay_account_refreshes_total{account=\"acc_a\",result=\"rejected\"} 2\n",
        "codex_relay_account_breaker_transitions_total{account=\"acc_a\",to=\"half_open\"} 0\n",
        "codex_relay_pool_conversations_moved_total 7\n",
    ] {
        assert!(text.contains(line), "{line}{text}");
    }
}

#[test]
fn counters_of_an_account_that_left_are_removed_and_the_others_kept() {
    let mut registry = registry();
    let calls: AccountCounters<CallLabels> =
        AccountCounters::register(&mut registry, "account_upstream_calls", "calls");
    let call = |id: &str, status| CallLabels {
        account: Account(AccountId::from(id)),
        status,
    };
    calls.inc(&call("acc_kept", CallStatus::Transport));
    calls.inc(&call("acc_kept", CallStatus::Transport));
    calls.inc(&call("acc_left", CallStatus::Timeout));
    calls.inc(&call("acc_left", CallStatus::Status(503)));
    calls.retain(|account| account.as_str() == "acc_kept");
    let text = encode_text(&registry).unwrap();
    let kept =
        "codex_relay_account_upstream_calls_total{account=\"acc_kept\",status=\"transport\"} 2\n";
    assert!(text.contains(kept), "{text}");
    assert!(!text.contains("acc_left"), "{text}");
    // An account seen again after it left starts a new series.
    calls.inc(&call("acc_left", CallStatus::Status(503)));
    let text = encode_text(&registry).unwrap();
    assert!(
        text.contains("{account=\"acc_left\",status=\"503\"} 1\n"),
        "{text}"
    );
}
