//! What an operator asks for when creating a tenant or a key — from the command line or the
//! admin API — and the one validation both creations and updates go through.
//!
//! The limits are one [`LimitRequest`], flattened into both requests: a new limit kind is added
//! there (and to [`Limits`]), and the compiler points at every conversion that must carry it.

use chrono::DateTime;
use serde::Deserialize;

use crate::bounds::{self, BURST, BURST_MINUTES_OF_RATE, CONCURRENT, RPM, TOKENS};
use crate::bounds::{invalid, Invalid};
use crate::domain::Limits;
use crate::store::{NewKey, NewTenant};

/// Limits as an operator asks for them, a key's or a tenant's: numbers taken as sent (wide) and
/// checked by [`limits`]; `None` is no limit. Only a key has a burst: a tenant refuses one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct LimitRequest {
    #[serde(default, deserialize_with = "bounds::number")]
    pub rpm: Option<i64>,
    #[serde(default, deserialize_with = "bounds::number")]
    pub burst: Option<i64>,
    #[serde(default, deserialize_with = "bounds::number")]
    pub max_concurrent: Option<i64>,
    #[serde(default, deserialize_with = "bounds::number")]
    pub daily_tokens: Option<i64>,
    #[serde(default, deserialize_with = "bounds::number")]
    pub monthly_tokens: Option<i64>,
}

/// A new tenant, as the admin API receives it (the CLI builds the same). A field neither here
/// nor in [`LimitRequest`] is refused by name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRequest {
    pub name: String,
    #[serde(flatten)]
    pub limits: LimitRequest,
    #[serde(default)]
    pub hidden_models: Vec<String>,
}

/// A new API key, as the admin API receives it (the CLI builds the same). A field neither here
/// nor in [`LimitRequest`] is refused by name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    pub name: String,
    /// Tenant id or name.
    pub tenant: Option<String>,
    #[serde(flatten)]
    pub limits: LimitRequest,
    pub models: Option<Vec<String>>,
    /// RFC 3339.
    pub expires: Option<String>,
}

pub(super) fn name(text: &str, field: &'static str) -> Result<String, Invalid> {
    bounds::name(field, text)
}

pub(super) fn models(names: &[String], field: &'static str) -> Result<Vec<String>, Invalid> {
    let names: Vec<String> = names.iter().map(|m| m.trim().to_owned()).collect();
    let unfit = |m: &String| m.is_empty() || m.len() > 128 || m.chars().any(bounds::is_unsafe);
    if names.iter().any(unfit) {
        return invalid(field, "must be a list of model names");
    }
    Ok(names)
}

/// A new expiry as Unix seconds: an RFC 3339 time after `now_unix`.
pub(super) fn expiry(text: &str, now_unix: i64) -> Result<i64, Invalid> {
    match DateTime::parse_from_rfc3339(text) {
        Err(_) => invalid("expires", "must be an RFC 3339 time"),
        Ok(at) if at.timestamp() <= now_unix => invalid("expires", "is in the past"),
        Ok(at) => Ok(at.timestamp()),
    }
}

/// Limits as an operator gave them, each checked against its bound; `None` is no limit.
pub(super) fn limits(request: &LimitRequest) -> Result<Limits, Invalid> {
    let LimitRequest {
        rpm,
        burst,
        max_concurrent,
        daily_tokens,
        monthly_tokens,
    } = *request;
    let rpm: Option<u32> = rpm.map(|v| RPM.narrow("rpm", v)).transpose()?;
    let burst: Option<u32> = burst.map(|v| BURST.narrow("burst", v)).transpose()?;
    match (rpm, burst) {
        (None, Some(_)) => return invalid("burst", "needs a rate (rpm)"),
        (Some(rpm), Some(burst)) if i64::from(burst) > i64::from(rpm) * BURST_MINUTES_OF_RATE => {
            return invalid(
                "burst",
                &format!(
                    "must be at most {BURST_MINUTES_OF_RATE} times the rpm (an hour of the rate)"
                ),
            )
        }
        _ => {}
    }
    Ok(Limits {
        rpm,
        burst,
        max_concurrent: max_concurrent
            .map(|v| CONCURRENT.narrow("max_concurrent", v))
            .transpose()?,
        daily_tokens: daily_tokens
            .map(|v| TOKENS.narrow("daily_tokens", v))
            .transpose()?,
        monthly_tokens: monthly_tokens
            .map(|v| TOKENS.narrow("monthly_tokens", v))
            .transpose()?,
    })
}

/// A tenant's limits, checked as [`limits`] does; a burst is refused (only a key has one: it is
/// the key's own allowance of requests at once, and a tenant's keys each set theirs).
pub(super) fn tenant_limits(request: &LimitRequest) -> Result<Limits, Invalid> {
    if request.burst.is_some() {
        return invalid(
            "burst",
            "is a key's own limit (set it on the tenant's keys)",
        );
    }
    limits(request)
}

/// Limits as they are kept, as a request: what an update starts from.
impl From<&Limits> for LimitRequest {
    fn from(limits: &Limits) -> LimitRequest {
        LimitRequest {
            rpm: limits.rpm.map(i64::from),
            burst: limits.burst.map(i64::from),
            max_concurrent: limits.max_concurrent.map(i64::from),
            daily_tokens: limits.daily_tokens.map(saturated),
            monthly_tokens: limits.monthly_tokens.map(saturated),
        }
    }
}

/// A token quota as the checks take it (one past `i64` is refused by its bound).
fn saturated(tokens: u64) -> i64 {
    i64::try_from(tokens).unwrap_or(i64::MAX)
}

impl TenantRequest {
    pub fn validate(&self) -> Result<NewTenant, Invalid> {
        Ok(NewTenant {
            name: name(&self.name, "name")?,
            limits: tenant_limits(&self.limits)?,
            hidden_models: models(&self.hidden_models, "hidden_models")?,
        })
    }
}

impl KeyRequest {
    /// The key to create; `now_unix` decides whether an expiry is in the past.
    pub fn validate(&self, now_unix: i64) -> Result<NewKey, Invalid> {
        let expires_at = self
            .expires
            .as_deref()
            .map(|text| expiry(text, now_unix))
            .transpose()?;
        Ok(NewKey {
            name: name(&self.name, "name")?,
            tenant: self.tenant.clone(),
            expires_at,
            models: self
                .models
                .as_deref()
                .map(|list| models(list, "models"))
                .transpose()?,
            limits: limits(&self.limits)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_request_is_checked_field_by_field() {
        let ok = KeyRequest {
            name: " ci ".into(),
            limits: LimitRequest {
                rpm: Some(10),
                burst: Some(5),
                ..LimitRequest::default()
            },
            models: Some(vec!["gpt-5.5".into()]),
            expires: Some("2030-01-01T00:00:00Z".into()),
            ..KeyRequest::default()
        };
        let new = ok.validate(0).unwrap();
        assert_eq!(new.name, "ci");
        assert_eq!(new.expires_at, Some(1_893_456_000));
        assert_eq!(new.limits.burst, Some(5));
        let field = |r: KeyRequest| r.validate(1_900_000_000).unwrap_err().field;
        assert_eq!(field(ok.clone()), "expires");
        let bad = |change: fn(&mut KeyRequest)| {
            let mut r = ok.clone();
            change(&mut r);
            r.validate(0).unwrap_err().field
        };
        assert_eq!(bad(|r| r.name = String::new()), "name");
        assert_eq!(bad(|r| r.limits.rpm = None), "burst");
        assert_eq!(bad(|r| r.limits.rpm = Some(0)), "rpm");
        assert_eq!(bad(|r| r.limits.daily_tokens = Some(0)), "daily_tokens");
        assert_eq!(bad(|r| r.models = Some(vec![" ".into()])), "models");
        assert_eq!(bad(|r| r.expires = Some("soon".into())), "expires");
    }

    #[test]
    fn every_limit_has_an_upper_bound_named_in_the_refusal() {
        let field = |r: KeyRequest| r.validate(0).unwrap_err().to_string();
        let key = |rpm, burst| KeyRequest {
            name: "k".into(),
            limits: LimitRequest {
                rpm: Some(rpm),
                burst: Some(burst),
                ..LimitRequest::default()
            },
            ..KeyRequest::default()
        };
        assert!(field(key(10, 4_294_967_295)).starts_with("burst: must be 1 to 1000000"));
        assert!(field(key(10, 601)).starts_with("burst: must be at most 60 times"));
        assert!(key(10, 600).validate(0).is_ok());
        assert!(field(key(1_000_001, 1)).starts_with("rpm:"));
        assert!(field(key(-1, 1)).starts_with("rpm:"));
        let tenant = |change: fn(&mut TenantRequest)| {
            let mut r = TenantRequest {
                name: "t".into(),
                ..TenantRequest::default()
            };
            change(&mut r);
            r.validate().map(|_| ()).map_err(|e| e.field)
        };
        assert_eq!(
            tenant(|r| r.limits.max_concurrent = Some(100_001)),
            Err("max_concurrent")
        );
        assert_eq!(
            tenant(|r| r.limits.daily_tokens = Some(1_000_000_000_001)),
            Err("daily_tokens")
        );
        assert_eq!(
            tenant(|r| r.limits.monthly_tokens = Some(i64::MAX)),
            Err("monthly_tokens")
        );
        assert_eq!(tenant(|r| r.name = "line\nbreak".into()), Err("name"));
        assert_eq!(
            tenant(|r| r.hidden_models = vec!["x\u{1b}".into()]),
            Err("hidden_models")
        );
        assert_eq!(
            tenant(|r| r.limits.monthly_tokens = Some(1_000_000_000_000)),
            Ok(())
        );
    }

    #[test]
    fn a_tenant_request_is_checked() {
        let request = TenantRequest {
            name: "search".into(),
            limits: LimitRequest {
                rpm: Some(60),
                ..LimitRequest::default()
            },
            hidden_models: vec!["gpt-5.2".into()],
        };
        assert_eq!(request.validate().unwrap().limits.rpm, Some(60));
        let unnamed = TenantRequest::default();
        assert_eq!(unnamed.validate().unwrap_err().field, "name");
    }

    /// The limits are flattened into both requests: a field of neither is still refused, by
    /// name, and the numbers still reach their bounds however large.
    #[test]
    fn unknown_fields_are_refused_by_name_and_a_tenant_has_no_burst() {
        let key = |json: &str| serde_json::from_str::<KeyRequest>(json);
        let tenant = |json: &str| serde_json::from_str::<TenantRequest>(json);
        let refusal = key(r#"{"name": "k", "rate": 5}"#).unwrap_err().to_string();
        assert!(refusal.starts_with("unknown field `rate`"), "{refusal}");
        let refusal = tenant(r#"{"name": "t", "models": []}"#)
            .unwrap_err()
            .to_string();
        assert!(refusal.starts_with("unknown field `models`"), "{refusal}");
        assert!(key(r#"{"rpm": 5}"#).is_err(), "a name is needed");
        assert!(key(r#"{"name": "k", "rpm": 1.5}"#).is_err());

        let limits = LimitRequest {
            rpm: Some(i64::MAX),
            burst: Some(-1),
            max_concurrent: Some(2),
            daily_tokens: None,
            monthly_tokens: Some(7),
        };
        let json = r#"{"name": "k", "rpm": 18446744073709551615, "burst": -1,
                       "max_concurrent": 2.0, "daily_tokens": null, "monthly_tokens": 7}"#;
        assert_eq!(key(json).unwrap().limits, limits);

        let burst = tenant(r#"{"name": "t", "rpm": 10, "burst": 5}"#).unwrap();
        assert_eq!(burst.validate().unwrap_err().field, "burst");
    }
}
