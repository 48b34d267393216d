//! What the store says about serving: whether the admin plane is exposed without a token
//! (`admin_exposure`), which accounts need a person (`accounts`), and the room left for the store
//! to grow (`disk`).

use std::path::Path;

use super::Finding;
use crate::settings::Settings;
use crate::store::files::store_paths;
use crate::store::{AccountSummary, Store};

/// Free space under which the store's filesystem warns (WAL growth, a backup beside it) …
const LOW_DISK: u64 = 1 << 30;
/// … and under which it fails: SQLite's next checkpoint or a token write may not fit.
const NO_DISK: u64 = 64 << 20;

/// Adds the `admin_exposure`, `accounts` and `disk` findings; `store` is the store opened
/// read-only, when it could be.
pub(super) fn checks(settings: &Settings, store: Option<&Store>, findings: &mut Vec<Finding>) {
    findings.push(admin_exposure(settings, store));
    if let Some(store) = store {
        findings.push(accounts(store, settings, chrono::Utc::now().timestamp()));
    }
    findings.push(disk(&settings.store.path));
}

fn admin_exposure(settings: &Settings, store: Option<&Store>) -> Finding {
    let addr = settings.admin.listen;
    if addr.ip().is_loopback() {
        return Finding::ok(
            "admin_exposure",
            format!("the admin plane listens on loopback ({addr})"),
        );
    }
    let tokens = store.map(|s| {
        s.list_admin_tokens()
            .map(|rows| rows.iter().filter(|r| r.revoked_at.is_none()).count())
    });
    match tokens {
        Some(Ok(0)) => Finding::fail(
            "admin_exposure",
            format!(
                "admin.listen is {addr}, beyond loopback, and no admin token exists: `serve` refuses \
                 to start so"
            ),
            "create a token first (`codex-relay admin-token create --scope write`), or set \
             admin.listen to a loopback address (127.0.0.1:8081)",
        ),
        Some(Ok(count)) if settings.metrics.open => Finding::warn(
            "admin_exposure",
            format!(
                "the admin plane on {addr} needs one of {count} admin tokens, but metrics.open \
                 serves GET /metrics to anyone who reaches it"
            ),
            "set metrics.open = false, or keep admin.listen where only Prometheus reaches it",
        ),
        Some(Ok(count)) => Finding::ok(
            "admin_exposure",
            format!("the admin plane on {addr} is beyond loopback, behind {count} admin token(s)"),
        ),
        Some(Err(e)) => Finding::warn(
            "admin_exposure",
            format!("admin.listen is {addr}, beyond loopback; the admin tokens cannot be read: {e}"),
            "fix the store (see above), then check again",
        ),
        None => Finding::warn(
            "admin_exposure",
            format!("admin.listen is {addr}, beyond loopback; without the store it is unknown whether an admin token protects it"),
            "fix the store (see above), then check again",
        ),
    }
}

/// An account that needs a person, and how badly.
struct Trouble {
    fails: bool,
    what: String,
}

fn accounts(store: &Store, settings: &Settings, now: i64) -> Finding {
    let accounts = match store.list_accounts() {
        Ok(accounts) => accounts,
        Err(e) => {
            return Finding::fail(
                "accounts",
                format!("the accounts cannot be read: {e}"),
                "fix the store (see above), then check again",
            )
        }
    };
    let serving: Vec<&AccountSummary> = accounts.iter().filter(|a| a.state != "disabled").collect();
    if serving.is_empty() {
        return Finding::warn(
            "accounts",
            "no account in the pool can serve (none, or all disabled)",
            "add one: `codex-relay account import FILE` or `codex-relay account login --device`",
        );
    }
    let max_age = i64::try_from(settings.oauth.refresh_max_age_days)
        .unwrap_or(i64::MAX)
        .saturating_mul(86_400);
    let troubles: Vec<Trouble> = serving
        .iter()
        .filter_map(|a| trouble(a, now, max_age))
        .collect();
    if troubles.is_empty() {
        return Finding::ok(
            "accounts",
            format!(
                "{} account(s) can serve; none needs a new login",
                serving.len()
            ),
        );
    }
    let message = format!(
        "{} of {} account(s) need attention: {}",
        troubles.len(),
        serving.len(),
        troubles
            .iter()
            .map(|t| t.what.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    );
    let hint = "log the account in again (`codex-relay account login --device`) or import a fresh \
                auth.json (`codex-relay account import FILE`); `codex-relay account list` shows \
                each account's state";
    if troubles.iter().any(|t| t.fails) {
        Finding::fail("accounts", message, hint)
    } else {
        Finding::warn("accounts", message, hint)
    }
}

/// Why `account` needs a person, if it does: its tokens do not open or its login is dead (fails);
/// its login has not been renewed for longer than `max_age` seconds while its access token
/// expired, or its last refresh failed (warns: the refresh token may be about to expire).
fn trouble(account: &AccountSummary, now: i64, max_age: i64) -> Option<Trouble> {
    let name = format!("{} ({})", account.id, account.label);
    if let Some(reason) = account
        .unreadable
        .as_deref()
        .or(account.reauth_reason.as_deref())
    {
        return Some(Trouble {
            fails: true,
            what: format!("{name} needs a new login: {reason}"),
        });
    }
    let expired = account.token_expires_at.is_some_and(|at| at <= now);
    let renewed = account.last_refresh.unwrap_or(account.created_at);
    if expired && now.saturating_sub(renewed) > max_age {
        let days = now.saturating_sub(renewed) / 86_400;
        return Some(Trouble {
            fails: false,
            what: format!(
                "{name}: its login has not been renewed for {days} days and its access token has \
                 expired; the refresh token may expire unused (start the relay so it refreshes)"
            ),
        });
    }
    account.last_refresh_error.as_deref().map(|error| Trouble {
        fails: false,
        what: format!("{name}: its last token refresh failed: {error}"),
    })
}

fn disk(db: &Path) -> Finding {
    let (folder, _) = store_paths(db);
    // A store not created yet will be in the nearest folder that exists.
    let folder = folder
        .ancestors()
        .find(|dir| dir.exists())
        .unwrap_or(&folder)
        .to_path_buf();
    let stats = match rustix::fs::statvfs(&folder) {
        Ok(stats) => stats,
        Err(e) => {
            return Finding::warn(
                "disk",
                format!("the free space of {} cannot be read: {e}", folder.display()),
                "check that the store's folder exists and is readable",
            )
        }
    };
    let free = stats.f_bavail.saturating_mul(stats.f_frsize);
    let shown = format!(
        "{:.1} GiB free on the store's filesystem ({})",
        gib(free),
        folder.display()
    );
    let hint = "free space there, or move the store (store.path) to a larger filesystem: SQLite \
                needs room to write tokens, usage and its WAL";
    match free {
        f if f < NO_DISK => Finding::fail("disk", shown, hint),
        f if f < LOW_DISK => Finding::warn("disk", shown, hint),
        _ => Finding::ok("disk", shown),
    }
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AccountSummary {
        AccountSummary {
            id: "a1".into(),
            label: "team".into(),
            chatgpt_account_id: "acct".into(),
            email: None,
            plan: None,
            state: "active".into(),
            state_reason: None,
            token_expires_at: Some(1_000),
            last_refresh: Some(0),
            created_at: 0,
            reauth_reason: None,
            last_refresh_error: None,
            last_refresh_error_at: None,
            unreadable: None,
        }
    }

    #[test]
    fn a_login_left_unrenewed_past_the_max_age_warns_and_a_dead_one_fails() {
        let day = 86_400;
        let fresh = account();
        assert!(trouble(&fresh, 500, 8 * day).is_none());
        let stale = trouble(&fresh, 9 * day, 8 * day).unwrap();
        assert!(
            !stale.fails && stale.what.contains("9 days"),
            "{}",
            stale.what
        );
        let mut dead = account();
        dead.reauth_reason = Some("refresh_token_reused".into());
        let dead = trouble(&dead, 500, 8 * day).unwrap();
        assert!(dead.fails && dead.what.contains("refresh_token_reused"));
        let mut failing = account();
        failing.last_refresh_error = Some("issuer answered 503".into());
        assert!(!trouble(&failing, 500, 8 * day).unwrap().fails);
    }
}
