//! What an operator asks for when creating a tenant or a key — from the command line or the
//! admin API — and the one validation both go through.

use chrono::DateTime;
use serde::Deserialize;

use super::policy::Limits;
use crate::store::{NewKey, NewTenant};

/// A new tenant, as the admin API receives it (the CLI builds the same).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRequest {
    pub name: String,
    pub rpm: Option<u32>,
    pub max_concurrent: Option<u32>,
    pub daily_tokens: Option<u64>,
    pub monthly_tokens: Option<u64>,
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
    pub rpm: Option<u32>,
    pub burst: Option<u32>,
    pub max_concurrent: Option<u32>,
    pub daily_tokens: Option<u64>,
    pub monthly_tokens: Option<u64>,
    pub models: Option<Vec<String>>,
    /// RFC 3339.
    pub expires: Option<String>,
}

/// Why a request cannot be carried out; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: &'static str,
    pub reason: String,
}

pub(super) fn invalid<T>(field: &'static str, reason: &str) -> Result<T, Invalid> {
    Err(Invalid {
        field,
        reason: reason.to_owned(),
    })
}

pub(super) fn name(text: &str, field: &'static str) -> Result<String, Invalid> {
    let text = text.trim();
    if text.is_empty() || text.len() > 64 {
        return invalid(field, "must be 1 to 64 characters");
    }
    Ok(text.to_owned())
}

pub(super) fn models(names: &[String], field: &'static str) -> Result<Vec<String>, Invalid> {
    let names: Vec<String> = names.iter().map(|m| m.trim().to_owned()).collect();
    if names.iter().any(|m| m.is_empty() || m.len() > 128) {
        return invalid(field, "must be a list of model names");
    }
    Ok(names)
}

pub(super) fn limits(
    rpm: Option<u32>,
    burst: Option<u32>,
    max_concurrent: Option<u32>,
    tokens: (Option<u64>, Option<u64>),
) -> Result<Limits, Invalid> {
    if rpm == Some(0) || burst == Some(0) || max_concurrent == Some(0) {
        return invalid(
            "limits",
            "a limit must be at least 1 (leave it out for none)",
        );
    }
    if tokens.0 == Some(0) || tokens.1 == Some(0) {
        return invalid(
            "limits",
            "a token quota must be at least 1 (leave it out for none)",
        );
    }
    if burst.is_some() && rpm.is_none() {
        return invalid("burst", "needs a rate (rpm)");
    }
    Ok(Limits {
        rpm,
        burst,
        max_concurrent,
        daily_tokens: tokens.0,
        monthly_tokens: tokens.1,
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
        assert_eq!(bad(|r| r.rpm = Some(0)), "limits");
        assert_eq!(bad(|r| r.daily_tokens = Some(0)), "limits");
        assert_eq!(bad(|r| r.models = Some(vec![" ".into()])), "models");
        assert_eq!(bad(|r| r.expires = Some("soon".into())), "expires");
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
