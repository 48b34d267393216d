//! Pure refresh decisions, with `now` passed in: when a token set needs refreshing (the defaults
//! follow the Codex CLI, which refreshes 5 minutes before the access token expires, or after 8
//! days when the token has no expiry), how a token endpoint's answer is classified (permanent
//! failures as the Codex CLI classifies them), and how long to wait before trying again after a
//! transient failure.

use std::time::{Duration, Instant};

use backoff::backoff::Backoff;
use backoff::{ExponentialBackoff, ExponentialBackoffBuilder};

/// How eagerly and how patiently an account refreshes; from the `oauth.*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Refresh when the access token expires within this many seconds.
    pub skew_secs: i64,
    /// Refresh when the last refresh is older than this, whatever the expiry says.
    pub max_age_secs: i64,
    /// How long a request waits for a running refresh when the current token cannot serve it;
    /// also how long a retiring account may take to end one and store a held set.
    pub wait: Duration,
    /// First and largest pause between attempts after a transient failure, and between writes
    /// of a rotated set the store refused.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// How often an idle account checks whether its login needs refreshing.
    pub check_every: Duration,
    /// No proactive refresh sooner than this after the last successful one (a skew longer than
    /// the issuer's token lifetime would otherwise refresh on every request). An expired token
    /// and a 401 still refresh at once.
    pub min_interval: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            skew_secs: 300,
            max_age_secs: 8 * 24 * 3600,
            wait: Duration::from_secs(20),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            check_every: Duration::from_secs(30),
            min_interval: Duration::from_secs(60),
        }
    }
}

/// Whether the token set needs a refresh now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing to do.
    None,
    /// Refresh soon; the current access token still serves meanwhile.
    Proactive,
    /// The access token has expired: requests must wait for a new one.
    Expired,
}

/// Proactive when `exp` is within the skew or `last_refresh` is older than the maximum age;
/// expired when `exp` has passed. A token without `exp` is judged by its age alone.
pub fn need(
    expires_at: Option<i64>,
    last_refresh: Option<i64>,
    now: i64,
    policy: &RefreshPolicy,
) -> Need {
    if expires_at.is_some_and(|exp| exp <= now) {
        return Need::Expired;
    }
    let expiring = expires_at.is_some_and(|exp| exp - now <= policy.skew_secs);
    let old = last_refresh.is_some_and(|at| now - at > policy.max_age_secs);
    if expiring || old {
        Need::Proactive
    } else {
        Need::None
    }
}

/// Whether a proactive refresh may start at `now`, given when this account last refreshed
/// successfully (`None`: not since it started).
pub fn proactive_allowed(
    last_success: Option<Instant>,
    now: Instant,
    policy: &RefreshPolicy,
) -> bool {
    last_success.is_none_or(|at| now.saturating_duration_since(at) >= policy.min_interval)
}

/// What a failed refresh means for the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The login is dead: only a human can bring it back; `reason` says what to do.
    Permanent { reason: String },
    /// May succeed later (network, 5xx, an unknown answer): retry with backoff.
    Transient { error: String },
}

/// What to tell an operator whose refresh token is dead: a refresh token the issuer refused for
/// good comes back only with a new login (the Codex CLI, too, asks its user to sign in again).
const LOG_IN_AGAIN: &str =
    "log the account in again (codex-relay account login, or the admin API) \
                            or import a fresh auth.json";

/// Classifies a token endpoint's error answer: permanent when the status is 401 or the body's
/// code is one of the three refresh-token codes (at any status), transient otherwise.
pub fn classify(status: u16, code: Option<&str>) -> Failure {
    let code = code.map(str::to_ascii_lowercase);
    let what = match code.as_deref() {
        Some("refresh_token_expired") => "the refresh token has expired",
        Some("refresh_token_reused") => {
            "the refresh token was already used (another copy of this login refreshed it: \
             each login must be owned by one relay only; or this relay stopped before its store \
             took rotated tokens: see 'rotated tokens not stored' in its log)"
        }
        Some("refresh_token_invalidated") => "the refresh token was revoked",
        _ if status == 401 => "the token endpoint refused the refresh token (401)",
        _ => {
            return Failure::Transient {
                error: format!("the token endpoint answered {status}"),
            }
        }
    };
    let code = code.map_or(String::new(), |c| format!(" ({c})"));
    Failure::Permanent {
        reason: format!("{what}{code}; {LOG_IN_AGAIN}"),
    }
}

/// Pauses between attempts after transient failures: exponential, jittered, capped.
pub struct Retry(ExponentialBackoff);

impl Retry {
    pub fn new(policy: &RefreshPolicy) -> Retry {
        Retry(
            ExponentialBackoffBuilder::new()
                .with_initial_interval(policy.retry_initial)
                .with_max_interval(policy.retry_max)
                .with_max_elapsed_time(None)
                .build(),
        )
    }

    /// The pause before the next attempt.
    pub fn next_delay(&mut self, policy: &RefreshPolicy) -> Duration {
        self.0.next_backoff().unwrap_or(policy.retry_max)
    }
}

/// A background retry is worth it only while the current token still serves: after it has
/// expired, the next request asks for a refresh itself.
pub fn retry_in_background(expires_at: Option<i64>, now: i64, delay: Duration) -> bool {
    let delay = i64::try_from(delay.as_secs()).unwrap_or(i64::MAX);
    expires_at.is_some_and(|exp| exp > now.saturating_add(delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_token_is_refreshed_within_the_skew_or_when_old() {
        let p = RefreshPolicy::default();
        assert_eq!(need(Some(NOW + 3600), Some(NOW), NOW, &p), Need::None);
        assert_eq!(need(Some(NOW + 300), Some(NOW), NOW, &p), Need::Proactive);
        assert_eq!(need(Some(NOW + 301), Some(NOW), NOW, &p), Need::None);
        assert_eq!(need(Some(NOW), None, NOW, &p), Need::Expired);
        let nine_days = 9 * 24 * 3600;
        assert_eq!(
            need(Some(NOW + 3600), Some(NOW - nine_days), NOW, &p),
            Need::Proactive
        );
        assert_eq!(need(None, Some(NOW - nine_days), NOW, &p), Need::Proactive);
        assert_eq!(need(None, Some(NOW - 3600), NOW, &p), Need::None);
        assert_eq!(need(None, None, NOW, &p), Need::None);
    }

    #[test]
    fn proactive_refreshes_keep_the_minimum_interval() {
        let p = RefreshPolicy::default();
        let now = Instant::now();
        assert!(proactive_allowed(None, now, &p));
        assert!(!proactive_allowed(Some(now), now, &p));
        assert!(!proactive_allowed(
            Some(now),
            now + Duration::from_secs(59),
            &p
        ));
        assert!(proactive_allowed(
            Some(now),
            now + Duration::from_secs(60),
            &p
        ));
        let eager = RefreshPolicy {
            min_interval: Duration::ZERO,
            ..RefreshPolicy::default()
        };
        assert!(proactive_allowed(Some(now), now, &eager));
    }

    #[test]
    fn the_three_refresh_token_codes_and_401_are_permanent() {
        for code in [
            "refresh_token_expired",
            "refresh_token_reused",
            "REFRESH_TOKEN_INVALIDATED",
        ] {
            for status in [400, 401] {
                let failure = classify(status, Some(code));
                let Failure::Permanent { reason } = failure else {
                    panic!("{code} at {status} is permanent");
                };
                assert!(reason.contains(&code.to_ascii_lowercase()), "{reason}");
                assert!(reason.contains("log the account in again"), "{reason}");
            }
        }
        assert!(matches!(classify(401, None), Failure::Permanent { .. }));
        assert!(matches!(
            classify(401, Some("whatever")),
            Failure::Permanent { .. }
        ));
    }

    #[test]
    fn other_answers_are_transient() {
        for (status, code) in [
            (500, None),
            (503, Some("overloaded")),
            (400, Some("invalid_request")),
        ] {
            assert!(
                matches!(classify(status, code), Failure::Transient { .. }),
                "{status}"
            );
        }
    }

    #[test]
    fn retries_grow_and_stay_capped() {
        let p = RefreshPolicy {
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            ..RefreshPolicy::default()
        };
        let mut retry = Retry::new(&p);
        let delays: Vec<Duration> = (0..12).map(|_| retry.next_delay(&p)).collect();
        assert!(delays[0] <= Duration::from_millis(150), "{delays:?}");
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(3)),
            "{delays:?}"
        );
        assert!(delays[11] >= Duration::from_millis(900), "{delays:?}");
    }

    #[test]
    fn background_retries_stop_once_the_token_expires() {
        let second = Duration::from_secs(1);
        assert!(retry_in_background(Some(NOW + 60), NOW, second));
        assert!(!retry_in_background(Some(NOW + 1), NOW, second));
        assert!(!retry_in_background(None, NOW, second));
    }
}
