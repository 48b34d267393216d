//! The bounds of what operators set, in one place: the range of every limit and routing
//! parameter, and what a name may be. The CLI, the admin API and the settings check against
//! the same numbers, and a refusal names the field.
//!
//! Numbers arrive wide (`i64`, as JSON and the command line carry them) and are checked before
//! they are narrowed, so a value past a type's end (a burst of 2^32 - 1 that the rate limiter's
//! arithmetic wraps, a negative weight) is refused by name rather than wrapped or cut.

use std::fmt;

use serde::{de, Deserialize, Deserializer};

/// Why a value cannot be used; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: &'static str,
    pub reason: String,
}

pub fn invalid<T>(field: &'static str, reason: &str) -> Result<T, Invalid> {
    Err(Invalid {
        field,
        reason: reason.to_owned(),
    })
}

/// The inclusive range one kind of value may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub min: i64,
    pub max: i64,
}

/// Requests per minute of a key or tenant: up to 16 666 a second.
pub const RPM: Range = Range::new(1, 1_000_000);
/// Requests that may arrive at once before the rate applies.
pub const BURST: Range = RPM;
/// A burst refills at the rate: more than an hour of it is a mistake, not a limit.
pub const BURST_MINUTES_OF_RATE: i64 = 60;
/// Requests in progress at once for a key or tenant.
pub const CONCURRENT: Range = Range::new(1, 100_000);
/// Tokens per day or month: a trillion, far past any account's quota.
pub const TOKENS: Range = Range::new(1, 1_000_000_000_000);
/// An account's priority: higher is used first.
pub const PRIORITY: Range = Range::new(-1_000, 1_000);
/// An account's share of the traffic.
pub const WEIGHT: Range = Range::new(1, 1_000);
/// Calls in flight on one account; 0 means no cap.
pub const ACCOUNT_IN_FLIGHT: Range = Range::new(0, 100_000);
/// Upstream calls in flight across the whole relay (`limits.max_in_flight`).
pub const RELAY_IN_FLIGHT: Range = Range::new(1, 1_000_000);

/// `limits.default_key_rpm`: a key rate as above, or 0 for none.
pub const DEFAULT_KEY_RPM: Range = Range::new(0, RPM.max);
/// `routing.max_attempts`: accounts one request may try.
pub const ATTEMPTS: Range = Range::new(1, 20);
/// `routing.affinity_capacity`: conversations remembered (about 100 bytes each).
pub const AFFINITY_CAPACITY: Range = Range::new(1, 10_000_000);
/// `store.pool_size`: SQLite connections (one writer at a time whatever the number).
pub const STORE_CONNECTIONS: Range = Range::new(1, 64);
/// `upstream.max_streams_per_connection`: HTTP/2 servers allow 100 to a few hundred.
pub const STREAMS_PER_CONNECTION: Range = Range::new(1, 10_000);
/// Client addresses whose failed authentications are counted at once (about 100 bytes each: the
/// bound keeps the table under a gigabyte).
pub const AUTH_FAILURE_ADDRESSES: Range = Range::new(1, 10_000_000);
/// Seconds the master-key command may run (`store.master_key_command_timeout_secs`).
pub const KEY_COMMAND_SECS: Range = Range::new(1, 600);
/// Minutes the relay remembers a response for stateful clients: up to a week.
pub const MEMORY_TTL_MINS: Range = Range::new(1, 7 * 24 * 60);
/// Bytes the remembered responses may take together: 1 MiB to 64 GiB.
pub const MEMORY_BYTES: Range = Range::new(1 << 20, 1 << 36);
/// Minutes a content capture may run at most (`audit.capture.max_duration_mins`): up to 30 days.
pub const CAPTURE_MINUTES: Range = Range::new(1, 43_200);
/// Bytes of one captured response kept before it is cut (`audit.capture.max_response_bytes`).
pub const CAPTURE_RESPONSE_BYTES: Range = Range::new(1024, 64 * 1024 * 1024);
/// Days captured records are kept (`audit.capture.retention_days`).
pub const CAPTURE_RETENTION_DAYS: Range = Range::new(1, 3650);

/// Longest name of a key, tenant or admin token, or label of an account, in characters.
pub const NAME_CHARS: usize = 64;

impl Range {
    pub const fn new(min: i64, max: i64) -> Range {
        Range { min, max }
    }

    /// `value` when it lies in the range.
    pub fn check(self, field: &'static str, value: i64) -> Result<i64, Invalid> {
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            invalid(field, &format!("must be {self}"))
        }
    }

    /// A value from the command line (parsed as an unsigned number), checked.
    pub fn check_unsigned(self, field: &'static str, value: u64) -> Result<i64, Invalid> {
        self.check(field, i64::try_from(value).unwrap_or(i64::MAX))
    }

    /// `value` checked and narrowed to the type the relay keeps it in.
    pub fn narrow<T: TryFrom<i64>>(self, field: &'static str, value: i64) -> Result<T, Invalid> {
        let value = self.check(field, value)?;
        T::try_from(value).or_else(|_| invalid(field, &format!("must be {self}")))
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", self.min, self.max)
    }
}

/// A JSON number as the bounds take it: any whole number, one past `i64` saturated — and so
/// refused by its bound, naming the field, rather than by a type error that names none.
struct Wide(i64);

impl<'de> Deserialize<'de> for Wide {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Wide, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Wide;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Wide, E> {
                Ok(Wide(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Wide, E> {
                Ok(Wide(i64::try_from(n).unwrap_or(i64::MAX)))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Wide, E> {
                if n.fract() != 0.0 || n.is_nan() {
                    return Err(E::invalid_type(de::Unexpected::Float(n), &self));
                }
                // `as` saturates: 1e30 is i64::MAX, past every bound.
                Ok(Wide(n as i64))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `deserialize_with` for an optional number (absent or `null`: `None`).
pub fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<Wide>::deserialize(d)?.map(|w| w.0))
}

/// `deserialize_with` for a number that may be changed (`Some`) to a value or to `null`.
pub fn number_change<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Ok(Some(Option::<Wide>::deserialize(d)?.map(|w| w.0)))
}

/// A name as stored: trimmed, 1 to [`NAME_CHARS`] characters, none of them a control
/// character (see [`is_unsafe`]).
pub fn name(field: &'static str, text: &str) -> Result<String, Invalid> {
    let text = text.trim();
    let chars = text.chars().count();
    if chars == 0 || chars > NAME_CHARS {
        return invalid(field, &format!("must be 1 to {NAME_CHARS} characters"));
    }
    if text.chars().any(is_unsafe) {
        return invalid(
            field,
            "must not contain control characters (a terminal would act on them)",
        );
    }
    Ok(text.to_owned())
}

/// Characters a terminal acts on instead of showing: the control characters, and the
/// bidirectional formatting characters that reorder the rest of a line.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_outside_its_range_is_refused_naming_the_field() {
        assert_eq!(BURST.check("burst", 5), Ok(5));
        let err = BURST.check("burst", 4_294_967_295).unwrap_err();
        assert_eq!(err.field, "burst");
        assert_eq!(err.to_string(), "burst: must be 1 to 1000000");
        assert!(WEIGHT.check("weight", -1).is_err());
        assert_eq!(ACCOUNT_IN_FLIGHT.check("max_in_flight", 0), Ok(0));
        assert!(RPM.check_unsigned("rpm", u64::MAX).is_err());
        assert_eq!(PRIORITY.narrow::<i32>("priority", -1_000), Ok(-1_000));
    }

    #[test]
    fn json_numbers_of_any_size_reach_the_bounds() {
        #[derive(Deserialize)]
        struct Body {
            #[serde(default, deserialize_with = "number")]
            n: Option<i64>,
        }
        let n = |text: &str| serde_json::from_str::<Body>(text).map(|b| b.n);
        assert_eq!(n(r#"{"n": 18446744073709551615}"#).unwrap(), Some(i64::MAX));
        assert_eq!(n(r#"{"n": -5}"#).unwrap(), Some(-5));
        assert_eq!(n(r#"{"n": 1e30}"#).unwrap(), Some(i64::MAX));
        assert_eq!(n(r#"{"n": 2.0}"#).unwrap(), Some(2));
        assert_eq!(n(r#"{"n": null}"#).unwrap(), None);
        assert_eq!(n("{}").unwrap(), None);
        assert!(n(r#"{"n": 1.5}"#).is_err());
        assert!(n(r#"{"n": "7"}"#).is_err());
    }

    #[test]
    fn names_are_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(name("name", "  ci  "), Ok("ci".to_owned()));
        assert_eq!(name("name", &"é".repeat(64)).map(|n| n.len()), Ok(128));
        for bad in [
            "",
            "   ",
            &"x".repeat(65),
            "a\u{1b}[2Jb",
            "tab\there",
            "del\u{7f}",
            "\u{9b}31m",
            "evil\u{202e}txt.exe",
        ] {
            let err = name("name", bad).unwrap_err();
            assert_eq!(err.field, "name", "{bad:?}");
        }
    }
}
