//! OpenAI's rate-limit headers: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`. Reset
//! times are written as OpenAI writes them (`1s`, `6m0s`, `20ms`).

use std::time::Duration;

use super::LimitSnapshot;

/// The header pairs for `snapshot`; the `-tokens` family only where a token quota applies.
pub fn pairs(snapshot: &LimitSnapshot) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    if let Some(r) = snapshot.requests {
        pairs.push(("x-ratelimit-limit-requests", r.limit.to_string()));
        pairs.push(("x-ratelimit-remaining-requests", r.remaining.to_string()));
        pairs.push(("x-ratelimit-reset-requests", reset_text(r.reset)));
    }
    if let Some(t) = snapshot.tokens {
        pairs.push(("x-ratelimit-limit-tokens", t.limit.to_string()));
        pairs.push(("x-ratelimit-remaining-tokens", t.remaining.to_string()));
        pairs.push(("x-ratelimit-reset-tokens", reset_text(t.reset)));
    }
    pairs
}

/// `1h2m3s`, `6m0s`, `1s`, `250ms`; whole seconds are rounded up so a client that waits as long
/// as it is told does not arrive early.
pub fn reset_text(reset: Duration) -> String {
    if reset < Duration::from_secs(1) {
        return format!("{}ms", reset.as_millis());
    }
    let secs = ceil_secs(reset);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// Whole seconds, rounded up, at least 1: what `Retry-After` says.
pub fn ceil_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_read_like_openai_ones() {
        assert_eq!(reset_text(Duration::from_millis(20)), "20ms");
        assert_eq!(reset_text(Duration::from_secs(1)), "1s");
        assert_eq!(reset_text(Duration::from_millis(1500)), "2s");
        assert_eq!(reset_text(Duration::from_secs(360)), "6m0s");
        assert_eq!(reset_text(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(ceil_secs(Duration::ZERO), 1);
        assert_eq!(ceil_secs(Duration::from_millis(59_001)), 60);
    }
}
