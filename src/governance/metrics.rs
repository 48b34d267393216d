//! The governance families, registered once at startup and updated with atomics where admission
//! and usage are decided ([`super::Governor`]): Responses calls admitted and tokens used per
//! tenant, limiter rejections by kind and scope, the same per key when `metrics.per_key` is on,
//! and the usage writer's failed writes; and the model catalog's age, read at scrape time.
//!
//! Labels are bounded: a tenant's name (created by an operator, so escaped; `""` for a key
//! without a tenant), a key's id (only in the per-key families), and fixed words for kinds and
//! scopes.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use foldhash::fast::FixedState;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::Rejection;
use crate::domain::{KeyPolicy, Usage};
use crate::obs::metrics::Text;

#[derive(Debug, Clone, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: Text<Arc<str>>,
}
crate::obs::metrics::cheap_hash!(TenantLabels { tenant });

#[derive(Debug, Clone, PartialEq, Eq, EncodeLabelSet)]
struct TenantTokenLabels {
    tenant: Text<Arc<str>>,
    kind: &'static str,
}
crate::obs::metrics::cheap_hash!(TenantTokenLabels { tenant, kind });

#[derive(Debug, Clone, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabels {
    tenant: Text<Arc<str>>,
    kind: &'static str,
    scope: &'static str,
}
crate::obs::metrics::cheap_hash!(RejectionLabels {
    tenant,
    kind,
    scope
});

#[derive(Debug, Clone, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    key: Arc<str>,
    tenant: Text<Arc<str>>,
}
crate::obs::metrics::cheap_hash!(KeyLabels { key, tenant });

#[derive(Debug, Clone, PartialEq, Eq, EncodeLabelSet)]
struct KeyTokenLabels {
    key: Arc<str>,
    tenant: Text<Arc<str>>,
    kind: &'static str,
}
crate::obs::metrics::cheap_hash!(KeyTokenLabels { key, tenant, kind });

#[derive(Debug, Clone, PartialEq, Eq, EncodeLabelSet)]
struct KeyRejectionLabels {
    key: Arc<str>,
    kind: &'static str,
}
crate::obs::metrics::cheap_hash!(KeyRejectionLabels { key, kind });

/// The `tenant_tokens` series of each tenant (by name), one per kind.
type SeriesByTenant = HashMap<Arc<str>, [Counter; 4], FixedState>;

/// The per-key families (`metrics.per_key`).
#[derive(Clone, Default)]
struct KeyFamilies {
    requests: Family<KeyLabels, Counter>,
    tokens: Family<KeyTokenLabels, Counter>,
    rejections: Family<KeyRejectionLabels, Counter>,
}

/// The governor's handles on its families; cheap to clone. [`GovernanceMetrics::default`] is
/// registered nowhere (a governor in a unit test).
#[derive(Clone)]
pub struct GovernanceMetrics {
    tenant_requests: Family<TenantLabels, Counter>,
    tenant_tokens: Family<TenantTokenLabels, Counter>,
    rejections: Family<RejectionLabels, Counter>,
    /// Each tenant's `tenant_tokens` series, one per kind in the order of [`token_kinds`]:
    /// a completed call adds to all four after one lookup here rather than four in the family.
    tenant_token_series: Arc<RwLock<SeriesByTenant>>,
    per_key: Option<KeyFamilies>,
    pub(super) usage_writer_errors: Counter,
    /// The `tenant` label of a key without a tenant, shared rather than built per request.
    no_tenant: Arc<str>,
}

impl Default for GovernanceMetrics {
    fn default() -> GovernanceMetrics {
        GovernanceMetrics {
            tenant_requests: Family::default(),
            tenant_tokens: Family::default(),
            rejections: Family::default(),
            tenant_token_series: Arc::default(),
            per_key: None,
            usage_writer_errors: Counter::default(),
            no_tenant: Arc::from(""),
        }
    }
}

impl GovernanceMetrics {
    /// Registers the families; the per-key ones only with `per_key` (`metrics.per_key`), so an
    /// operator who did not ask for them pays no series per key.
    pub fn register(registry: &mut Registry, per_key: bool) -> GovernanceMetrics {
        let metrics = GovernanceMetrics {
            per_key: per_key.then(KeyFamilies::default),
            ..GovernanceMetrics::default()
        };
        registry.register(
            "tenant_requests",
            "Responses calls admitted, by tenant",
            metrics.tenant_requests.clone(),
        );
        registry.register(
            "tenant_tokens",
            "Tokens of completed responses, by tenant and kind (input includes cached, output \
             includes reasoning)",
            metrics.tenant_tokens.clone(),
        );
        registry.register(
            "limiter_rejections",
            "Requests refused by a limit, by tenant, kind of limit and scope",
            metrics.rejections.clone(),
        );
        if let Some(keys) = &metrics.per_key {
            registry.register(
                "key_requests",
                "Responses calls admitted, by API key",
                keys.requests.clone(),
            );
            registry.register(
                "key_tokens",
                "Tokens of completed responses, by API key and kind",
                keys.tokens.clone(),
            );
            registry.register(
                "key_limiter_rejections",
                "Requests refused by a limit, by API key and kind of limit",
                keys.rejections.clone(),
            );
        }
        registry.register(
            "usage_writer_errors",
            "Writes of token usage to the store that failed (the in-memory quotas stay right)",
            metrics.usage_writer_errors.clone(),
        );
        metrics
    }

    /// The `tenant` label of `key`: its tenant's name, shared, escaped when encoded.
    fn tenant_of(&self, key: &KeyPolicy) -> Text<Arc<str>> {
        Text(Arc::clone(
            key.tenant.as_ref().map_or(&self.no_tenant, |t| &t.name),
        ))
    }

    /// One Responses call of `key` admitted.
    pub(super) fn admitted(&self, key: &KeyPolicy) {
        let tenant = self.tenant_of(key);
        if let Some(keys) = &self.per_key {
            let labels = KeyLabels {
                key: Arc::clone(&key.id),
                tenant: tenant.clone(),
            };
            keys.requests.get_or_create(&labels).inc();
        }
        self.tenant_requests
            .get_or_create(&TenantLabels { tenant })
            .inc();
    }

    /// One request of `key` refused by a limit.
    pub(super) fn rejected(&self, key: &KeyPolicy, rejection: &Rejection) {
        let (kind, scope) = kind_and_scope(rejection);
        if let Some(keys) = &self.per_key {
            let labels = KeyRejectionLabels {
                key: Arc::clone(&key.id),
                kind,
            };
            keys.rejections.get_or_create(&labels).inc();
        }
        let tenant = self.tenant_of(key);
        let labels = RejectionLabels {
            tenant,
            kind,
            scope,
        };
        self.rejections.get_or_create(&labels).inc();
    }

    /// The tokens of one completed response of `key`.
    pub(super) fn used(&self, key: &KeyPolicy, usage: &Usage) {
        let tenant = self.tenant_of(key);
        let kinds = token_kinds(usage);
        if let Some(keys) = &self.per_key {
            for (kind, tokens) in kinds {
                let labels = KeyTokenLabels {
                    key: Arc::clone(&key.id),
                    tenant: tenant.clone(),
                    kind,
                };
                keys.tokens.get_or_create(&labels).inc_by(tokens);
            }
        }
        let add = |series: &[Counter; 4]| {
            for ((_, tokens), counter) in kinds.iter().zip(series) {
                counter.inc_by(*tokens);
            }
        };
        {
            let known = self.tenant_token_series.read();
            let known = known.unwrap_or_else(PoisonError::into_inner);
            if let Some(series) = known.get(&tenant.0) {
                return add(series);
            }
        }
        let series = kinds.map(|(kind, _)| {
            let labels = TenantTokenLabels {
                tenant: tenant.clone(),
                kind,
            };
            self.tenant_tokens.get_or_create(&labels).clone()
        });
        add(&series);
        self.tenant_token_series
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(Arc::clone(&tenant.0), series);
    }
}

/// The `kind` and `scope` labels of a rejection.
fn kind_and_scope(rejection: &Rejection) -> (&'static str, &'static str) {
    match rejection {
        Rejection::Rate { scope, .. } => ("rate", scope.as_str()),
        Rejection::Concurrency { scope, .. } => ("concurrency", scope.as_str()),
        Rejection::Quota { scope, .. } => ("quota", scope.as_str()),
        Rejection::Overloaded => ("overloaded", "global"),
    }
}

/// A usage's counts under their `kind` labels.
fn token_kinds(usage: &Usage) -> [(&'static str, u64); 4] {
    [
        ("input", usage.input_tokens),
        ("cached", usage.cached_tokens),
        ("output", usage.output_tokens),
        ("reasoning", usage.reasoning_tokens),
    ]
}

/// When the upstream's model catalog was last fetched, as the model registry notes it.
#[derive(Debug, Default)]
pub struct CatalogClock(Mutex<Option<Instant>>);

impl CatalogClock {
    /// A catalog was fetched now.
    pub fn fetched(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    fn last(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `model_catalog_age_seconds`, computed at scrape time from the [`CatalogClock`]; absent until
/// a first fetch succeeds (the configured catalog is in force meanwhile).
#[derive(Debug)]
pub struct CatalogAge(pub Arc<CatalogClock>);

impl Collector for CatalogAge {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let Some(fetched) = self.0.last() else {
            return Ok(());
        };
        let age = ConstGauge::new(fetched.elapsed().as_secs_f64());
        let metric = encoder.encode_descriptor(
            "model_catalog_age_seconds",
            "Seconds since the upstream's model catalog was last fetched",
            None,
            age.metric_type(),
        )?;
        age.encode(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Scope, TenantPolicy};
    use crate::obs::metrics::{encode_text, registry};
    use std::time::Duration;

    fn team_key() -> KeyPolicy {
        let mut key = KeyPolicy::unrestricted("key_1");
        key.tenant = Some(Arc::new(TenantPolicy {
            id: "ten_1".into(),
            name: "team".into(),
            limits: Default::default(),
            hidden_models: Vec::new(),
        }));
        key
    }

    #[test]
    fn a_tenants_tokens_add_up_across_calls_and_tenants_stay_apart() {
        let mut registry = registry();
        let metrics = GovernanceMetrics::register(&mut registry, false);
        let usage = Usage {
            input_tokens: 10,
            cached_tokens: 4,
            output_tokens: 3,
            reasoning_tokens: 2,
            total_tokens: 13,
        };
        metrics.used(&team_key(), &usage);
        metrics.used(&team_key(), &usage);
        metrics.used(&KeyPolicy::unrestricted("key_2"), &usage);
        let text = encode_text(&registry).unwrap();
        for (kind, team, none) in [
            ("input", 20, 10),
            ("cached", 8, 4),
            ("output", 6, 3),
            ("reasoning", 4, 2),
        ] {
            let team = format!(
                "codex_relay_tenant_tokens_total{{tenant=\"team\",kind=\"{kind}\"}} {team}"
            );
            let none =
                format!("codex_relay_tenant_tokens_total{{tenant=\"\",kind=\"{kind}\"}} {none}");
            assert!(text.contains(&team), "{team}\n{text}");
            assert!(text.contains(&none), "{none}\n{text}");
        }
    }

    #[test]
    fn each_rejection_has_its_kind_and_scope() {
        let wait = Duration::from_secs(1);
        let cases = [
            (
                Rejection::Rate {
                    scope: Scope::Key,
                    retry_after: wait,
                },
                ("rate", "key"),
            ),
            (
                Rejection::Concurrency {
                    scope: Scope::Tenant,
                    limit: 1,
                },
                ("concurrency", "tenant"),
            ),
            (
                Rejection::Quota {
                    scope: Scope::Tenant,
                    retry_after: wait,
                },
                ("quota", "tenant"),
            ),
            (Rejection::Overloaded, ("overloaded", "global")),
        ];
        for (rejection, labels) in cases {
            assert_eq!(kind_and_scope(&rejection), labels, "{rejection:?}");
        }
    }

    #[test]
    fn per_key_families_exist_only_when_asked_for() {
        for per_key in [false, true] {
            let mut registry = registry();
            let metrics = GovernanceMetrics::register(&mut registry, per_key);
            let key = team_key();
            metrics.admitted(&key);
            metrics.rejected(&key, &Rejection::Overloaded);
            metrics.used(&key, &Usage::default());
            let text = encode_text(&registry).unwrap();
            assert!(
                text.contains("codex_relay_tenant_requests_total{tenant=\"team\"} 1"),
                "{text}"
            );
            assert_eq!(text.contains("key_1"), per_key, "{text}");
        }
    }

    #[test]
    fn the_catalog_age_is_absent_until_a_first_fetch() {
        let mut registry = registry();
        let clock = Arc::new(CatalogClock::default());
        registry.register_collector(Box::new(CatalogAge(Arc::clone(&clock))));
        let before = encode_text(&registry).unwrap();
        assert!(!before.contains("model_catalog_age"), "{before}");
        clock.fetched();
        let after = encode_text(&registry).unwrap();
        assert!(
            after.contains("# TYPE codex_relay_model_catalog_age_seconds gauge"),
            "{after}"
        );
    }
}
