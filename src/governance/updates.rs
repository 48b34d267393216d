//! What an operator changes on an existing tenant or key — limits, model lists, expiry — from
//! the command line (`tenant update`, `key update`) or the admin API (`PATCH`). A field left out
//! stays as it is; a field set to `null` (or named in the CLI's `--clear`) is removed. The
//! result is validated as a creation is, so an update cannot make what a creation refuses.

use serde::{Deserialize, Deserializer};

use super::requests::{expiry, limits, models, tenant_limits, LimitRequest};
use crate::bounds::number_change;
use crate::bounds::{invalid, Invalid};
use crate::domain::Limits;
use crate::domain::{KeySettings, TenantSettings};

/// One field's change: `None` keeps it, `Some(None)` removes it, `Some(Some(v))` sets it.
pub type Change<T> = Option<Option<T>>;

/// Tells a JSON `null` (remove) from a missing field (keep).
fn change<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Change<T>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Changes to the limits of a tenant or key, one per field of [`LimitRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct LimitChanges {
    #[serde(default, deserialize_with = "number_change")]
    pub rpm: Change<i64>,
    #[serde(default, deserialize_with = "number_change")]
    pub burst: Change<i64>,
    #[serde(default, deserialize_with = "number_change")]
    pub max_concurrent: Change<i64>,
    #[serde(default, deserialize_with = "number_change")]
    pub daily_tokens: Change<i64>,
    #[serde(default, deserialize_with = "number_change")]
    pub monthly_tokens: Change<i64>,
}

/// Changes to a tenant. A field neither here nor in [`LimitChanges`] is refused by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantUpdate {
    #[serde(flatten)]
    pub limits: LimitChanges,
    /// `null` or `[]` hides nothing.
    #[serde(default, deserialize_with = "change")]
    pub hidden_models: Change<Vec<String>>,
}

/// Changes to an API key. A field neither here nor in [`LimitChanges`] is refused by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyUpdate {
    #[serde(flatten)]
    pub limits: LimitChanges,
    /// `null` allows every model.
    #[serde(default, deserialize_with = "change")]
    pub models: Change<Vec<String>>,
    /// RFC 3339; `null` never expires.
    #[serde(default, deserialize_with = "change")]
    pub expires: Change<String>,
}

fn apply<T>(current: Option<T>, change: Change<T>) -> Option<T> {
    match change {
        None => current,
        Some(new) => new,
    }
}

impl LimitChanges {
    /// The limits `now` becomes, as a request to validate like a creation.
    fn applied_to(self, now: &Limits) -> LimitRequest {
        let LimitChanges {
            rpm,
            burst,
            max_concurrent,
            daily_tokens,
            monthly_tokens,
        } = self;
        let now = LimitRequest::from(now);
        LimitRequest {
            rpm: apply(now.rpm, rpm),
            burst: apply(now.burst, burst),
            max_concurrent: apply(now.max_concurrent, max_concurrent),
            daily_tokens: apply(now.daily_tokens, daily_tokens),
            monthly_tokens: apply(now.monthly_tokens, monthly_tokens),
        }
    }
}

/// The refusal of an update that changes nothing (likely a mistyped command).
fn nothing_to_change<T>() -> Result<T, Invalid> {
    invalid("update", "names nothing to change")
}

impl TenantUpdate {
    /// The tenant's settings with this update applied, validated.
    pub fn apply(
        self,
        limits_now: &Limits,
        hidden_now: &[String],
    ) -> Result<TenantSettings, Invalid> {
        if self == TenantUpdate::default() {
            return nothing_to_change();
        }
        let hidden = apply(Some(hidden_now.to_vec()), self.hidden_models).unwrap_or_default();
        Ok(TenantSettings {
            limits: tenant_limits(&self.limits.applied_to(limits_now))?,
            hidden_models: models(&hidden, "hidden_models")?,
        })
    }
}

impl KeyUpdate {
    /// The key's settings with this update applied, validated; `now_unix` decides whether a
    /// new expiry is in the past.
    pub fn apply(self, now: &KeySettings, now_unix: i64) -> Result<KeySettings, Invalid> {
        if self == KeyUpdate::default() {
            return nothing_to_change();
        }
        let expires_at = match self.expires {
            None => now.expires_at,
            Some(None) => None,
            Some(Some(text)) => Some(expiry(&text, now_unix)?),
        };
        Ok(KeySettings {
            limits: limits(&self.limits.applied_to(&now.limits))?,
            models: apply(now.models.clone(), self.models)
                .as_deref()
                .map(|list| models(list, "models"))
                .transpose()?,
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_now() -> KeySettings {
        KeySettings {
            limits: Limits {
                rpm: Some(10),
                burst: Some(5),
                daily_tokens: Some(1000),
                ..Limits::default()
            },
            models: Some(vec!["gpt-5.5".into()]),
            expires_at: Some(2_000_000_000),
        }
    }

    #[test]
    fn left_out_fields_stay_null_ones_go_and_set_ones_change() {
        let update: KeyUpdate =
            serde_json::from_str(r#"{"rpm": 20, "models": null, "expires": null}"#).unwrap();
        let after = update.apply(&key_now(), 0).unwrap();
        assert_eq!(after.limits.rpm, Some(20));
        assert_eq!(after.limits.burst, Some(5), "left out: kept");
        assert_eq!(after.limits.daily_tokens, Some(1000));
        assert_eq!(after.models, None, "null: every model");
        assert_eq!(after.expires_at, None, "null: never expires");
    }

    #[test]
    fn an_update_is_validated_like_a_creation() {
        let field = |json: &str| {
            let update: KeyUpdate = serde_json::from_str(json).unwrap();
            update.apply(&key_now(), 1_000).unwrap_err().field
        };
        assert_eq!(field(r#"{"rpm": null}"#), "burst", "a burst needs a rate");
        assert_eq!(field(r#"{"rpm": 0}"#), "rpm");
        assert_eq!(field(r#"{"daily_tokens": 0}"#), "daily_tokens");
        assert_eq!(field(r#"{"burst": 4294967295}"#), "burst");
        assert_eq!(field(r#"{"max_concurrent": -3}"#), "max_concurrent");
        assert_eq!(field(r#"{"models": [" "]}"#), "models");
        assert_eq!(field(r#"{"expires": "1970-01-01T00:00:00Z"}"#), "expires");
        assert_eq!(field(r#"{"expires": "soon"}"#), "expires");
        assert_eq!(field("{}"), "update");
        assert!(serde_json::from_str::<KeyUpdate>(r#"{"name": "x"}"#).is_err());
    }

    #[test]
    fn a_tenant_update_changes_limits_and_hidden_models() {
        let now = Limits {
            rpm: Some(60),
            monthly_tokens: Some(5),
            ..Limits::default()
        };
        let update: TenantUpdate = serde_json::from_str(
            r#"{"max_concurrent": 2, "monthly_tokens": null, "hidden_models": ["gpt-5.2"]}"#,
        )
        .unwrap();
        let after = update.apply(&now, &[]).unwrap();
        assert_eq!(after.limits.rpm, Some(60));
        assert_eq!(after.limits.max_concurrent, Some(2));
        assert_eq!(after.limits.monthly_tokens, None);
        assert_eq!(after.hidden_models, ["gpt-5.2"]);
        let cleared: TenantUpdate = serde_json::from_str(r#"{"hidden_models": null}"#).unwrap();
        assert!(cleared
            .apply(&now, &["x".into()])
            .unwrap()
            .hidden_models
            .is_empty());
        assert_eq!(
            TenantUpdate::default().apply(&now, &[]).unwrap_err().field,
            "update"
        );
    }

    #[test]
    fn an_update_refuses_unknown_fields_by_name_and_a_tenant_burst() {
        let refusal = serde_json::from_str::<KeyUpdate>(r#"{"rpm": 5, "name": "x"}"#)
            .unwrap_err()
            .to_string();
        assert!(refusal.starts_with("unknown field `name`"), "{refusal}");
        let refusal = serde_json::from_str::<TenantUpdate>(r#"{"models": null}"#)
            .unwrap_err()
            .to_string();
        assert!(refusal.starts_with("unknown field `models`"), "{refusal}");
        let burst: TenantUpdate = serde_json::from_str(r#"{"rpm": 10, "burst": 5}"#).unwrap();
        let now = Limits::default();
        assert_eq!(burst.apply(&now, &[]).unwrap_err().field, "burst");
    }
}
