//! The account and pool families on `GET /metrics`: each account's state, upstream calls,
//! failovers, refreshes and the quota its upstream reported, read at scrape time — and nothing of
//! an account once it has left the pool, and never an email.

use codex_relay::settings::RoutingStrategy;
use codex_relay::store::admin_tokens::AdminScope;

use crate::helpers::{admin_call, body, read_all, spawn_app_with, TestApp};
use crate::mock_upstream::{fake_auth_json, Scripted};
use crate::pool_helpers::{ok, server_error, usage_limit};

/// The email of the second account's auth.json: no series may carry it.
const SEEDED_EMAIL: &str = "metrics.seeded.person@example.org";

/// The value of the series `name{labels…}`: every given label must match; `None` if absent.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (set, sample) = rest.split_once("} ")?;
        let pairs: Vec<(&str, &str)> = set
            .split("\",")
            .filter_map(|pair| pair.split_once("=\""))
            .map(|(k, v)| (k, v.trim_end_matches('"')))
            .collect();
        let matches = labels.iter().all(|wanted| pairs.contains(wanted));
        matches.then(|| sample.trim().parse().expect("a number"))
    })
}

/// A scrape, read by account and family (the name after `codex_relay_account_`).
struct Scraped(String);

impl Scraped {
    fn of(&self, account: &str, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut all = vec![("account", account)];
        all.extend_from_slice(labels);
        value(&self.0, &format!("codex_relay_account_{family}"), &all)
    }
}

async fn scrape(app: &TestApp, token: &str) -> String {
    let mut response = app.admin("GET", "/metrics", token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    String::from_utf8(read_all(&mut response).await.to_vec()).unwrap()
}

/// Imports `acct-metrics-2` (email [`SEEDED_EMAIL`], plan `plan`) through the admin API; its
/// relay id.
async fn import_second_account(app: &TestApp, token: &str, plan: &str) -> String {
    let exp = chrono::Utc::now().timestamp() + 3600;
    let auth = fake_auth_json("acct-metrics-2", SEEDED_EMAIL, plan, exp);
    let (status, imported) = admin_call(app, "POST", "/admin/v1/accounts", token, Some(auth)).await;
    assert_eq!(status, 201, "{imported}");
    imported["id"].as_str().unwrap().to_owned()
}

/// A 429 `usage_limit_reached` that also reports both quota windows, as the Codex backend does.
fn capped_with_quota(resets_at: i64, long_reset: i64) -> Scripted {
    let (script, _) = usage_limit(resets_at - chrono::Utc::now().timestamp());
    let Scripted::Status { status, body, .. } = script else {
        unreachable!("a usage limit is a status")
    };
    let headers = [
        ("x-codex-primary-used-percent", "100".to_owned()),
        ("x-codex-primary-window-minutes", "300".to_owned()),
        ("x-codex-primary-reset-at", resets_at.to_string()),
        ("x-codex-secondary-used-percent", "41.5".to_owned()),
        ("x-codex-secondary-window-minutes", "10080".to_owned()),
        ("x-codex-secondary-reset-at", long_reset.to_string()),
    ];
    Scripted::Status {
        status,
        body,
        headers: headers.map(|(n, v)| (n.to_owned(), v)).into(),
    }
}

/// Two accounts: the first fails a request with a 500, which moves to the second, capped (a 429
/// reporting both quota windows); the first serves the next request; an operator refreshes it.
struct Scenario {
    app: TestApp,
    write: String,
    /// Relay ids in the router's order, and the id of the account imported with a `pro` plan.
    first: String,
    second: String,
    imported: String,
    /// The reset times the capped account's answer reported.
    resets: (i64, i64),
}

async fn failover_onto_a_capped_account() -> Scenario {
    let app = spawn_app_with(|s| {
        s.routing.strategy = RoutingStrategy::FillFirst;
        s.routing.retry_backoff_ms = 1;
    })
    .await;
    let write = app.admin_token(AdminScope::Write).await;
    let imported = import_second_account(&app, &write, "pro").await;
    // Under fill_first the account with the lower relay id is tried first.
    let mut pool = [
        (app.account_id.clone(), "acct-test-1"),
        (imported.clone(), "acct-metrics-2"),
    ];
    pool.sort();
    let [(first, first_chatgpt), (second, second_chatgpt)] = pool;
    let now = chrono::Utc::now().timestamp();
    let resets = (now + 1800, now + 86_400);
    let state = &app.mock.state;
    state.push_scripted_for(first_chatgpt, server_error());
    state.push_scripted_for(second_chatgpt, capped_with_quota(resets.0, resets.1));
    let mut failed = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_ne!(failed.status(), 200);
    let _ = read_all(&mut failed).await;
    ok(&app).await;
    let refresh = format!("/admin/v1/accounts/{first}/refresh");
    let (status, refreshed) = admin_call(&app, "POST", &refresh, &write, None).await;
    assert_eq!(status, 200, "{refreshed}");
    Scenario {
        app,
        write,
        first,
        second,
        imported,
        resets,
    }
}

/// The quota gauges say exactly what the upstream reported.
fn assert_reported_quota(m: &Scraped, s: &Scenario) {
    let (first, second) = (s.first.as_str(), s.second.as_str());
    let window = |account, family: &str, window| {
        m.of(account, &format!("quota_{family}"), &[("window", window)])
    };
    let (short_reset, long_reset) = (s.resets.0 as f64, s.resets.1 as f64);
    assert_eq!(window(second, "used_percent", "primary"), Some(100.0));
    assert_eq!(window(second, "used_percent", "secondary"), Some(41.5));
    assert_eq!(window(second, "window_seconds", "primary"), Some(18_000.0));
    assert_eq!(
        window(second, "window_seconds", "secondary"),
        Some(604_800.0)
    );
    assert_eq!(
        window(second, "reset_timestamp_seconds", "primary"),
        Some(short_reset)
    );
    assert_eq!(
        window(second, "reset_timestamp_seconds", "secondary"),
        Some(long_reset)
    );
    assert_eq!(
        window(first, "used_percent", "primary"),
        Some(12.5),
        "the mock's default"
    );
}

#[actix_web::test]
async fn metrics_show_each_accounts_state_calls_failovers_refreshes_and_quota() {
    let s = failover_onto_a_capped_account().await;
    let m = Scraped(scrape(&s.app, &s.write).await);
    let (first, second) = (s.first.as_str(), s.second.as_str());
    let calls = "upstream_calls_total";
    assert_eq!(
        m.of(first, calls, &[("status", "500")]),
        Some(1.0),
        "{}",
        m.0
    );
    assert_eq!(m.of(first, calls, &[("status", "200")]), Some(1.0));
    assert_eq!(m.of(second, calls, &[("status", "429")]), Some(1.0));
    let failover = [("reason", "upstream_status")];
    assert_eq!(m.of(first, "failovers_total", &failover), Some(1.0));

    let state = |account, name| m.of(account, "state", &[("state", name)]);
    assert_eq!(state(first, "active"), Some(1.0));
    assert_eq!(state(first, "cooling"), Some(0.0));
    assert_eq!(state(second, "cooling"), Some(1.0));
    assert_eq!(state(second, "active"), Some(0.0));
    let cooldown = "cooldown_until_timestamp_seconds";
    assert_eq!(m.of(first, cooldown, &[]), Some(0.0));
    let until = m.of(second, cooldown, &[]).unwrap();
    assert!(until > chrono::Utc::now().timestamp() as f64, "{until}");

    assert_reported_quota(&m, &s);
    assert_eq!(
        m.of(first, "refreshes_total", &[("result", "ok")]),
        Some(1.0)
    );
    assert_eq!(
        m.of(second, "refreshes_total", &[("result", "ok")]),
        Some(0.0)
    );
    let opened = m.of(first, "breaker_transitions_total", &[("to", "open")]);
    assert_eq!(opened, Some(0.0));
    assert_eq!(m.of(first, "calls_in_flight", &[]), Some(0.0));
    let expiry = m.of(first, "access_token_expiry_timestamp_seconds", &[]);
    assert!(expiry.unwrap() > chrono::Utc::now().timestamp() as f64);
    assert_eq!(m.of(&s.imported, "info", &[("plan", "pro")]), Some(1.0));

    let pool_accounts = |state| value(&m.0, "codex_relay_pool_accounts", &[("state", state)]);
    assert_eq!(pool_accounts("active"), Some(1.0));
    assert_eq!(pool_accounts("cooling"), Some(1.0));
    assert_eq!(pool_accounts("reauth_required"), Some(0.0));
    assert!(
        m.0.contains("\ncodex_relay_pool_usable_accounts 1\n"),
        "{}",
        m.0
    );
    assert!(m
        .0
        .contains("\ncodex_relay_pool_conversations_moved_total 0\n"));
    for email in [SEEDED_EMAIL, "metrics.seeded.person", "dev@example.com"] {
        assert!(!m.0.contains(email), "an email in the metrics: {email}");
    }
    s.app.stop().await;
}

#[actix_web::test]
async fn an_account_that_left_the_pool_leaves_no_series() {
    let app = spawn_app_with(|s| s.routing.strategy = RoutingStrategy::RoundRobin).await;
    let write = app.admin_token(AdminScope::Write).await;
    let leaving = import_second_account(&app, &write, "plus").await;
    // Turns alternate: the leaving account fails its requests over to the other one.
    let state = &app.mock.state;
    state.set_standing_for("acct-metrics-2", Some(server_error()));
    for _ in 0..4 {
        ok(&app).await;
    }
    let m = Scraped(scrape(&app, &write).await);
    for family in ["upstream_calls_total", "failovers_total", "state", "info"] {
        let seen = m.of(&leaving, family, &[]);
        assert!(seen.is_some(), "{family}: {}", m.0);
    }

    let path = format!("/admin/v1/accounts/{leaving}");
    let (status, _) = admin_call(&app, "DELETE", &path, &write, None).await;
    assert_eq!(status, 200);
    let m = Scraped(scrape(&app, &write).await);
    assert!(!m.0.contains(&leaving), "{}", m.0);
    assert!(m.of(&app.account_id, "upstream_calls_total", &[]).is_some());
    let active = value(&m.0, "codex_relay_pool_accounts", &[("state", "active")]);
    assert_eq!(active, Some(1.0));
    app.stop().await;
}
