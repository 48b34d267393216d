//! What an upstream answer says about its account, for the pool: the rate-limit headers
//! (`x-codex-primary-*` / `x-codex-secondary-*`: the used percent, length and reset time of the
//! short and the long window) and, on errors, the code, reset time and retry delay. Parsed here
//! because the actors know no HTTP; carried to the account in its lease's [`UpstreamFacts`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{HeaderMap, HeaderName};
use relay_actors::{QuotaSnapshot, QuotaWindow, UpstreamFacts};
use serde_json::Value;

use super::headers::text;

/// The headers of one window, named once rather than formatted on every answer.
struct WindowHeaders {
    used_percent: HeaderName,
    window_minutes: HeaderName,
    reset_at: HeaderName,
    reset_after_seconds: HeaderName,
}

const PRIMARY: WindowHeaders = WindowHeaders {
    used_percent: HeaderName::from_static("x-codex-primary-used-percent"),
    window_minutes: HeaderName::from_static("x-codex-primary-window-minutes"),
    reset_at: HeaderName::from_static("x-codex-primary-reset-at"),
    reset_after_seconds: HeaderName::from_static("x-codex-primary-reset-after-seconds"),
};

const SECONDARY: WindowHeaders = WindowHeaders {
    used_percent: HeaderName::from_static("x-codex-secondary-used-percent"),
    window_minutes: HeaderName::from_static("x-codex-secondary-window-minutes"),
    reset_at: HeaderName::from_static("x-codex-secondary-reset-at"),
    reset_after_seconds: HeaderName::from_static("x-codex-secondary-reset-after-seconds"),
};

/// The rate-limit snapshot of an answer's headers; `None` when it carries no window.
pub fn snapshot(headers: &HeaderMap, now: SystemTime) -> Option<QuotaSnapshot> {
    let primary = window(headers, &PRIMARY, now);
    let secondary = window(headers, &SECONDARY, now);
    if primary.is_none() && secondary.is_none() {
        return None;
    }
    Some(QuotaSnapshot {
        primary,
        secondary,
        observed_at: now,
    })
}

/// One window, reported (as the Codex client does) only if its used percent parses and it says
/// something: a non-zero percent or window, or a reset time.
fn window(headers: &HeaderMap, which: &WindowHeaders, now: SystemTime) -> Option<QuotaWindow> {
    let value = |name: &HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let used: f64 = value(&which.used_percent)?
        .parse()
        .ok()
        .filter(|p: &f64| p.is_finite())?;
    let minutes: Option<u64> = value(&which.window_minutes).and_then(|v| v.parse().ok());
    let resets_at = value(&which.reset_at)
        .and_then(|v| v.parse::<u64>().ok())
        .and_then(unix_time)
        .or_else(|| {
            // The historic relative form.
            let secs: u64 = value(&which.reset_after_seconds)?.parse().ok()?;
            now.checked_add(Duration::from_secs(secs))
        });
    let says_something = used != 0.0 || minutes.is_some_and(|m| m != 0) || resets_at.is_some();
    says_something.then_some(QuotaWindow {
        used_percent: used,
        window_minutes: minutes,
        resets_at,
    })
}

/// The facts of a non-200 answer: its rate-limit headers, its error code (`error.code`, else
/// `error.type` — the usage-limit body uses `type`), when the limit resets (`error.resets_at`)
/// and how long to wait (`error.resets_in_seconds`, else `Retry-After` in seconds).
pub fn error_facts(headers: &HeaderMap, body: &[u8], now: SystemTime) -> UpstreamFacts {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let error = &parsed["error"];
    UpstreamFacts {
        rate_limits: snapshot(headers, now),
        error_code: error["code"]
            .as_str()
            .or(error["type"].as_str())
            .map(str::to_owned),
        resets_at: error["resets_at"].as_u64().and_then(unix_time),
        retry_after: error["resets_in_seconds"]
            .as_u64()
            .or_else(|| text(headers, "retry-after").and_then(|v| v.trim().parse().ok()))
            .map(Duration::from_secs),
    }
}

/// The facts of a `response.failed` event's error object.
pub fn failed_event_facts(error: &Value) -> UpstreamFacts {
    UpstreamFacts {
        rate_limits: None,
        error_code: error["code"]
            .as_str()
            .or(error["type"].as_str())
            .map(str::to_owned),
        resets_at: error["resets_at"].as_u64().and_then(unix_time),
        retry_after: error["resets_in_seconds"].as_u64().map(Duration::from_secs),
    }
}

fn unix_time(secs: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn both_windows_are_read() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let h = headers(&[
            ("x-codex-primary-used-percent", "12.5"),
            ("x-codex-primary-window-minutes", "300"),
            ("x-codex-primary-reset-at", "5000"),
            ("x-codex-secondary-used-percent", "3.0"),
            ("x-codex-secondary-reset-after-seconds", "60"),
        ]);
        let s = snapshot(&h, now).unwrap();
        let primary = s.primary.unwrap();
        assert_eq!(primary.used_percent, 12.5);
        assert_eq!(primary.window_minutes, Some(300));
        assert_eq!(
            primary.resets_at,
            Some(UNIX_EPOCH + Duration::from_secs(5000))
        );
        let secondary = s.secondary.unwrap();
        assert_eq!(secondary.resets_at, Some(now + Duration::from_secs(60)));
        assert_eq!(s.remaining_percent(), 87.5);
    }

    #[test]
    fn empty_or_unparsable_windows_are_not_reported() {
        let now = UNIX_EPOCH;
        assert!(snapshot(&HeaderMap::new(), now).is_none());
        let h = headers(&[
            ("x-codex-primary-used-percent", "0"),
            ("x-codex-secondary-used-percent", "NaN"),
        ]);
        assert!(snapshot(&h, now).is_none());
    }

    #[test]
    fn a_usage_limit_body_gives_its_type_and_reset() {
        let body = br#"{"error":{"type":"usage_limit_reached","plan_type":"plus","resets_at":1704067242}}"#;
        let facts = error_facts(&headers(&[("retry-after", "30")]), body, UNIX_EPOCH);
        assert_eq!(facts.error_code.as_deref(), Some("usage_limit_reached"));
        assert_eq!(
            facts.resets_at,
            Some(UNIX_EPOCH + Duration::from_secs(1_704_067_242))
        );
        assert_eq!(facts.retry_after, Some(Duration::from_secs(30)));
        let absurd = br#"{"error":{"resets_at":18446744073709551615}}"#;
        assert_eq!(
            error_facts(&HeaderMap::new(), absurd, UNIX_EPOCH).resets_at,
            None
        );
    }
}
