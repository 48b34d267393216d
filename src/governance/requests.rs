//! What an operator asks for when creating a tenant or a key — from the command line or the
//! admin API — and the one validation both go through.

use chrono::DateTime;
use serde::Deserialize;

use crate::bounds::{self, BURST, BURST_MINUTES_OF_RATE, CONCURRENT, RPM, TOKENS};
use crate::bounds::{invalid, Invalid};
use crate::domain::Limits;
use crate::store::{NewKey, NewTenant};

/// A new tenant, as the admin API receives it (the CLI builds the same). Numbers are taken as
/// sent and checked against [`crate::bounds`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRequest {
    pub name: String,
    #[serde(default, deserialize_with = "bounds::number")]
    pub rpm: Option<i64>,
    #[serde(default, deserialize_with = "bounds::number")]
    pub max_concurrent: Option<i64>,
    #[serde(default, deserialize_with = "bounds::number")]
    pub daily_tokens: Option<i64>,
    #[serde(default, deserialize_with = "bounds::number")]
    pub monthly_tokens: Option<i64>,
    #[serde(default)]
    pub hidden_models: Vec<String>,
}

/// A new API key, as the admin API receives it (the CLI builds the same).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    pub name: String,
    /// Tenant id or name.
    pub tenant: Option<String>,
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

/// Limits as an operator gave them, each checked against its bound; `None` is no limit.
pub(super) fn limits(
    rpm: Option<i64>,
    burst: Option<i64>,
    max_concurrent: Option<i64>,
    tokens: (Option<i64>, Option<i64>),
) -> Result<Limits, Invalid> {
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
        daily_tokens: tokens
            .0
            .map(|v| TOKENS.narrow("daily_tokens", v))
            .transpose()?,
        monthly_tokens: tokens
            .1
            .map(|v| TOKENS.narrow("monthly_tokens", v))
            .transpose()?,
    })
}

impl TenantRequest {
    pub fn validate(&self) -> Result<NewTenant, Invalid> {
        Ok(NewTenant {
            name: name(&self.name, "name")?,
            limits: limits(
                self.rpm,
                None,
                self.max_concurrent,
                (self.daily_tokens, self.monthly_tokens),
            )?,
            hidden_models: models(&self.hidden_models, "hidden_models")?,
        })
    }
}

impl KeyRequest {
    /// The key to create; `now_unix` decides whether an expiry is in the past.
    pub fn validate(&self, now_unix: i64) -> Result<NewKey, Invalid> {
        let expires_at = match &self.expires {
            None => None,
            Some(text) => match DateTime::parse_from_rfc3339(text) {
                Err(_) => return invalid("expires", "must be an RFC 3339 time"),
                Ok(at) if at.timestamp() <= now_unix => {
                    return invalid("expires", "is in the past")
                }
                Ok(at) => Some(at.timestamp()),
            },
        };
        Ok(NewKey {
            name: name(&self.name, "name")?,
            tenant: self.tenant.clone(),
            expires_at,
            models: match &self.models {
                Some(list) => Some(models(list, "models")?),
                None => None,
            },
            limits: limits(
                self.rpm,
                self.burst,
                self.max_concurrent,
                (self.daily_tokens, self.monthly_tokens),
            )?,
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
            rpm: Some(10),
            burst: Some(5),
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
        assert_eq!(bad(|r| r.rpm = None), "burst");
        assert_eq!(bad(|r| r.rpm = Some(0)), "rpm");
        assert_eq!(bad(|r| r.daily_tokens = Some(0)), "daily_tokens");
        assert_eq!(bad(|r| r.models = Some(vec![" ".into()])), "models");
        assert_eq!(bad(|r| r.expires = Some("soon".into())), "expires");
    }

    #[test]
    fn every_limit_has_an_upper_bound_named_in_the_refusal() {
        let field = |r: KeyRequest| r.validate(0).unwrap_err().to_string();
        let key = |rpm, burst| KeyRequest {
            name: "k".into(),
            rpm: Some(rpm),
            burst: Some(burst),
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
            tenant(|r| r.max_concurrent = Some(100_001)),
            Err("max_concurrent")
        );
        assert_eq!(
            tenant(|r| r.daily_tokens = Some(1_000_000_000_001)),
            Err("daily_tokens")
        );
        assert_eq!(
            tenant(|r| r.monthly_tokens = Some(i64::MAX)),
            Err("monthly_tokens")
        );
        assert_eq!(tenant(|r| r.name = "line\nbreak".into()), Err("name"));
        assert_eq!(
            tenant(|r| r.hidden_models = vec!["x\u{1b}".into()]),
            Err("hidden_models")
        );
        assert_eq!(
            tenant(|r| r.monthly_tokens = Some(1_000_000_000_000)),
            Ok(())
        );
    }

    #[test]
    fn a_tenant_request_is_checked() {
        let request = TenantRequest {
            name: "search".into(),
            rpm: Some(60),
            hidden_models: vec!["gpt-5.2".into()],
            ..TenantRequest::default()
        };
        assert_eq!(request.validate().unwrap().limits.rpm, Some(60));
        let unnamed = TenantRequest::default();
        assert_eq!(unnamed.validate().unwrap_err().field, "name");
    }
}
