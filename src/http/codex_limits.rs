//! The limits a Codex client shows, worked out for the caller: per window, the tighter of its
//! token quotas (the key's and its tenant's: the day as the short window, the month as the long
//! one) and the pool's headroom (`pool::headroom`). Written on every `POST /v1/responses` answer
//! in place of the backend's rate-limit headers, in place of any `codex.rate_limits` event, and
//! served on the usage endpoint the Codex CLI reads for `/status` (`GET /api/codex/usage`, and
//! `GET /backend-api/wham/usage` for a `chatgpt_base_url` ending in `/backend-api`).

use std::time::Duration;

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use chrono::Utc;

use super::error::ApiError;
use crate::credentials::Principal;
use crate::governance::quota::WindowUse;
use crate::state::AppState;
use crate::upstream::shown_limits::{ShownLimits, ShownWindow};

/// The caller's limits now.
pub fn shown_for(state: &AppState, principal: &Principal) -> ShownLimits {
    let now = Utc::now();
    let [day, month] = state.governor().quota_windows(&principal.policy, now);
    let pool = state.headroom().now();
    let at = |w: WindowUse| ShownWindow {
        used_percent: w.used_percent,
        window_minutes: w.window_minutes,
        reset_at: now.timestamp() + i64::try_from(ceil_secs(w.reset)).unwrap_or(i64::MAX),
    };
    ShownLimits {
        primary: tighter(day.map(at), pool.primary),
        secondary: tighter(month.map(at), pool.secondary),
    }
}

/// The window with more used; the caller's own on a tie.
fn tighter(own: Option<ShownWindow>, pool: Option<ShownWindow>) -> Option<ShownWindow> {
    match (own, pool) {
        (Some(own), Some(pool)) if pool.used_percent > own.used_percent => Some(pool),
        (own, pool) => own.or(pool),
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// `GET /api/codex/usage` and `GET /backend-api/wham/usage`: the caller's limits in the shape
/// of the backend's usage endpoint.
pub async fn usage(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let principal = req
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or(ApiError::Internal)?;
    let shown = shown_for(&state, &principal);
    Ok(HttpResponse::Ok().json(shown.usage_body(Utc::now().timestamp())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(used: f64) -> Option<ShownWindow> {
        Some(ShownWindow {
            used_percent: used,
            window_minutes: 1,
            reset_at: 1,
        })
    }

    #[test]
    fn the_window_with_more_used_is_shown() {
        assert_eq!(tighter(window(10.0), window(50.0)), window(50.0));
        assert_eq!(tighter(window(60.0), window(50.0)), window(60.0));
        assert_eq!(tighter(None, window(50.0)), window(50.0));
        assert_eq!(tighter(window(5.0), None), window(5.0));
        assert_eq!(tighter(None, None), None);
    }
}
