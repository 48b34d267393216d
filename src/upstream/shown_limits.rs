//! The limits a Codex client shows (`/status`, "you are near your limit") as the relay writes
//! them: the `x-codex-primary-*` / `x-codex-secondary-*` headers, the `codex.rate_limits` event
//! and the usage endpoint's body, filled with the caller's numbers (its key's and tenant's token
//! quotas, the pool's headroom) that the data plane works out. The backend's own rate-limit
//! family describes one pool account — and tells which one served — so it never reaches a
//! client ([`is_account_limit`]).

use actix_web::http::header::HeaderName;
use bytes::Bytes;
use serde_json::{json, Value};

/// One window as Codex shows it: how much is used, how long it is, when it resets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShownWindow {
    /// 0–100.
    pub used_percent: f64,
    pub window_minutes: u64,
    /// Unix seconds.
    pub reset_at: i64,
}

/// The short (primary) and long (secondary) window shown to one caller; no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ShownLimits {
    pub primary: Option<ShownWindow>,
    pub secondary: Option<ShownWindow>,
}

static PRIMARY: [HeaderName; 3] = [
    HeaderName::from_static("x-codex-primary-used-percent"),
    HeaderName::from_static("x-codex-primary-window-minutes"),
    HeaderName::from_static("x-codex-primary-reset-at"),
];
static SECONDARY: [HeaderName; 3] = [
    HeaderName::from_static("x-codex-secondary-used-percent"),
    HeaderName::from_static("x-codex-secondary-window-minutes"),
    HeaderName::from_static("x-codex-secondary-reset-at"),
];

/// Suffixes of the headers of a rate-limit window, in any limit family (`x-codex-…`,
/// `x-codex-other-…`).
const WINDOW_SUFFIXES: [&str; 9] = [
    "-primary-used-percent",
    "-primary-window-minutes",
    "-primary-reset-at",
    "-primary-reset-after-seconds",
    "-secondary-used-percent",
    "-secondary-window-minutes",
    "-secondary-reset-at",
    "-secondary-reset-after-seconds",
    "-primary-over-secondary-limit-percent",
];

/// True for a header of the backend's rate-limit family: it describes the pool account that
/// served (windows, credits, plan limits), not the caller.
pub fn is_account_limit(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("x-codex-") else {
        return false;
    };
    rest.starts_with("credits-")
        || matches!(
            rest,
            "limit-name" | "active-limit" | "promo-message" | "rate-limit-reached-type"
        )
        || rest.ends_with("-limit-name")
        || WINDOW_SUFFIXES.iter().any(|s| rest.ends_with(s))
        || rest.starts_with("primary-")
        || rest.starts_with("secondary-")
}

impl ShownLimits {
    /// The `x-codex-*` headers of the windows that are known.
    pub fn headers(&self) -> impl Iterator<Item = (HeaderName, String)> + '_ {
        let windows = [(&PRIMARY, self.primary), (&SECONDARY, self.secondary)];
        windows.into_iter().flat_map(|(names, window)| {
            window.into_iter().flat_map(move |w| {
                [
                    (names[0].clone(), format!("{:.1}", w.used_percent)),
                    (names[1].clone(), w.window_minutes.to_string()),
                    (names[2].clone(), w.reset_at.to_string()),
                ]
            })
        })
    }

    /// The `codex.rate_limits` event that replaces the backend's: an SSE block, without the
    /// blank line that ends it (the replaced event's stays).
    pub fn rate_limits_block(&self) -> Bytes {
        let window = |w: Option<ShownWindow>| {
            w.map(|w| {
                json!({"used_percent": w.used_percent, "window_minutes": w.window_minutes, "reset_at": w.reset_at})
            })
        };
        let event = json!({
            "type": "codex.rate_limits",
            "plan_type": null,
            "rate_limits": {
                "allowed": !self.limit_reached(),
                "limit_reached": self.limit_reached(),
                "primary": window(self.primary),
                "secondary": window(self.secondary),
            },
            "credits": null,
            "metered_limit_name": null,
            "limit_name": null,
        });
        Bytes::from(format!("event: codex.rate_limits\ndata: {event}"))
    }

    /// The body of the usage endpoint (`/api/codex/usage`, `/wham/usage`), at `now` (unix
    /// seconds).
    pub fn usage_body(&self, now: i64) -> Value {
        let window = |w: Option<ShownWindow>| {
            w.map(|w| {
                json!({
                    "used_percent": w.used_percent.round() as i64,
                    "limit_window_seconds": w.window_minutes * 60,
                    "reset_after_seconds": (w.reset_at - now).max(0),
                    "reset_at": w.reset_at,
                })
            })
        };
        json!({
            "plan_type": "unknown",
            "rate_limit": {
                "allowed": !self.limit_reached(),
                "limit_reached": self.limit_reached(),
                "primary_window": window(self.primary),
                "secondary_window": window(self.secondary),
            },
            "credits": null,
            "additional_rate_limits": [],
            "rate_limit_reached_type": null,
        })
    }

    fn limit_reached(&self) -> bool {
        [self.primary, self.secondary]
            .iter()
            .flatten()
            .any(|w| w.used_percent >= 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_rate_limit_family_is_recognized_and_the_rest_is_not() {
        for name in [
            "x-codex-primary-used-percent",
            "x-codex-secondary-reset-at",
            "x-codex-credits-balance",
            "x-codex-other-primary-window-minutes",
            "x-codex-other-limit-name",
            "x-codex-active-limit",
            "x-codex-promo-message",
            "x-codex-primary-over-secondary-limit-percent",
        ] {
            assert!(is_account_limit(name), "{name}");
        }
        for name in [
            "x-codex-turn-state",
            "x-codex-safety-buffering-enabled",
            "openai-model",
            "x-request-id",
        ] {
            assert!(!is_account_limit(name), "{name}");
        }
    }

    #[test]
    fn only_known_windows_are_written() {
        let shown = ShownLimits {
            primary: Some(ShownWindow {
                used_percent: 42.0,
                window_minutes: 1440,
                reset_at: 1_900_000_000,
            }),
            secondary: None,
        };
        let headers: Vec<_> = shown.headers().collect();
        assert_eq!(headers.len(), 3);
        assert_eq!(headers[0].1, "42.0");
        let body = shown.usage_body(1_899_999_000);
        assert_eq!(
            body["rate_limit"]["primary_window"]["reset_after_seconds"],
            1000
        );
        assert!(body["rate_limit"]["secondary_window"].is_null());
        let event = String::from_utf8(shown.rate_limits_block().to_vec()).unwrap();
        assert!(event.starts_with("event: codex.rate_limits\ndata: {"));
        assert!(!event.contains("\n\n"));
    }
}
