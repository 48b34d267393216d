//! The model registry: which models the relay offers, under which names, to whom, and which
//! accounts serve them.
//!
//! - The catalog is the upstream's, fetched per plan (`/models?client_version=`) by
//!   [`crate::governance::model_refresh`]; until a fetch succeeds — or when fetching is off —
//!   the configured `models.catalog` is the catalog.
//! - Aliases (`models.aliases`) are offered as models of their own and resolved to their slug
//!   before routing; the upstream only ever sees slugs.
//! - A name hidden globally (`models.hidden`) or by the caller's tenant is neither listed nor
//!   served (404, as for a model that does not exist). An alias of a hidden slug stays usable, so
//!   an operator can offer a model under an alias only.
//! - A key's allow-list admits a model by the name asked or by the slug it resolves to; another
//!   model is not listed, and asking for it is a 403 (OpenAI's answer for a model a project may
//!   not use).
//! - Routing by plan: a plan whose catalog was fetched serves only the models in it; accounts of
//!   other plans (or none known) are not excluded.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, RwLock};

use prometheus_client::registry::Registry;
use serde_json::Value;

use super::catalog_view::CatalogView;
use super::metrics::{CatalogAge, CatalogClock};
use super::model_info::{renamed, slug, synthesized};
use crate::domain::KeyPolicy;
use crate::settings::ModelSettings;

/// A model name resolved for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// What the upstream is asked for.
    pub slug: String,
    /// Plans whose accounts do not serve it.
    pub exclude_plans: Vec<String>,
}

/// Why a model name cannot be used by a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelRefusal {
    /// Unknown, or hidden from the caller: 404.
    NotFound,
    /// Offered, but not on the key's allow-list: 403.
    NotAllowed,
}

pub struct ModelRegistry {
    sources: RwLock<Sources>,
    /// What requests read: rebuilt whenever a plan's catalog or the offer changes, never per
    /// request.
    current: RwLock<Arc<Catalog>>,
    /// When a plan's catalog was last fetched (`model_catalog_age_seconds`).
    fetched: Arc<CatalogClock>,
}

/// What the catalog is built from: the settings' offer and each plan's fetched catalog.
struct Sources {
    offer: Arc<Offer>,
    by_plan: BTreeMap<String, Vec<Value>>,
}

/// What the `models.*` settings offer; replaced whole by a settings reload.
#[derive(Default)]
struct Offer {
    fallback: Vec<String>,
    aliases: BTreeMap<String, String>,
    hidden: Vec<String>,
    owned_by: String,
}

impl Offer {
    fn of(settings: &ModelSettings) -> Offer {
        Offer {
            fallback: settings.catalog.clone(),
            aliases: settings.aliases.clone(),
            hidden: settings.hidden.clone(),
            owned_by: settings.owned_by.clone(),
        }
    }

    fn hides(&self, name: &str, key: &KeyPolicy) -> bool {
        self.hidden.iter().any(|h| h == name) || key.tenant_hides(name)
    }
}

/// The catalog as of the last change, and the callers' views of it built since.
#[derive(Default)]
struct Catalog {
    offer: Arc<Offer>,
    /// Every plan's models (first entry of a slug wins, ordered by `priority`), or the
    /// configured fallback.
    base: Vec<Value>,
    /// The slugs each fetched plan serves.
    plans: BTreeMap<String, HashSet<String>>,
    /// Views by the hash of what decides them, so a request finds its view without building a
    /// key (entries whose hashes collide share a bucket).
    views: Mutex<HashMap<u64, ViewBucket>>,
}

/// What decides a caller's view: its tenant's hidden models and its key's allow-list.
type ViewKey = (Vec<String>, Option<Vec<String>>);

/// The views whose keys share a hash.
type ViewBucket = Vec<(ViewKey, Arc<CatalogView>)>;

/// Distinct views kept at most; beyond it the cache starts over (keys and tenants are few).
const MAX_VIEWS: usize = 1024;

impl ModelRegistry {
    pub fn new(settings: &ModelSettings) -> ModelRegistry {
        let sources = Sources {
            offer: Arc::new(Offer::of(settings)),
            by_plan: BTreeMap::new(),
        };
        let registry = ModelRegistry {
            current: RwLock::new(Arc::new(Catalog::default())),
            sources: RwLock::new(sources),
            fetched: Arc::default(),
        };
        registry.rebuild(&registry.write_sources());
        registry
    }

    /// Replaces the catalog fetched for `plan` (entries without a slug are dropped).
    pub fn set_plan_catalog(&self, plan: &str, models: Vec<Value>) {
        let models = models.into_iter().filter(|m| slug(m).is_some()).collect();
        let mut sources = self.write_sources();
        sources.by_plan.insert(plan.to_owned(), models);
        self.rebuild(&sources);
        self.fetched.fetched();
    }

    /// Registers `model_catalog_age_seconds`, read from this registry at scrape time.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(CatalogAge(Arc::clone(&self.fetched))));
    }

    /// Takes new `models.*` settings (a settings reload): the fallback catalog, aliases, hidden
    /// names and owner apply to the next request; the fetched catalogs stay.
    pub fn reconfigure(&self, settings: &ModelSettings) {
        let mut sources = self.write_sources();
        sources.offer = Arc::new(Offer::of(settings));
        self.rebuild(&sources);
    }

    fn write_sources(&self) -> std::sync::RwLockWriteGuard<'_, Sources> {
        self.sources.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Plans with a fetched catalog.
    pub fn fetched_plans(&self) -> Vec<String> {
        self.catalog().plans.keys().cloned().collect()
    }

    fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn rebuild(&self, sources: &Sources) {
        let by_plan = &sources.by_plan;
        let catalog = Catalog {
            offer: Arc::clone(&sources.offer),
            base: base(&sources.offer, by_plan),
            plans: by_plan
                .iter()
                .map(|(plan, models)| {
                    let slugs = models.iter().filter_map(slug).map(str::to_owned).collect();
                    (plan.clone(), slugs)
                })
                .collect(),
            views: Mutex::default(),
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(catalog);
    }
}

/// The catalog before any caller's filter.
fn base(offer: &Offer, by_plan: &BTreeMap<String, Vec<Value>>) -> Vec<Value> {
    if by_plan.is_empty() {
        return offer
            .fallback
            .iter()
            .enumerate()
            .map(|(i, m)| synthesized(m, i))
            .collect();
    }
    let mut seen: HashMap<String, Value> = HashMap::new();
    for info in by_plan.values().flatten() {
        if let Some(s) = slug(info) {
            seen.entry(s.to_owned()).or_insert_with(|| info.clone());
        }
    }
    let mut models: Vec<Value> = seen.into_values().collect();
    models.sort_by_key(|m| {
        (
            m.get("priority").and_then(Value::as_i64),
            slug(m).map(str::to_owned),
        )
    });
    models
}

impl ModelRegistry {
    /// The models `key` sees, as Codex `ModelInfo` entries: the catalog, then the aliases whose
    /// slug is in it, less what is hidden from the key or not on its allow-list.
    pub fn visible(&self, key: &KeyPolicy) -> Vec<Value> {
        self.view(key).models.clone()
    }

    /// `key`'s view of the catalog, built once per catalog and kind of caller.
    pub fn view(&self, key: &KeyPolicy) -> Arc<CatalogView> {
        let catalog = self.catalog();
        let hidden: &[String] = key.tenant.as_ref().map_or(&[], |t| &t.hidden_models);
        let models = key.models.as_deref();
        let hash = {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            (hidden, models).hash(&mut hasher);
            hasher.finish()
        };
        let mut views = catalog.views.lock().unwrap_or_else(|e| e.into_inner());
        let found = views.get(&hash).and_then(|bucket| {
            bucket
                .iter()
                .find(|((h, m), _)| h.as_slice() == hidden && m.as_deref() == models)
        });
        if let Some((_, view)) = found {
            return Arc::clone(view);
        }
        let view = Arc::new(CatalogView::new(
            filter(&catalog.offer, &catalog.base, key),
            &catalog.offer.owned_by,
        ));
        if views.len() >= MAX_VIEWS {
            views.clear();
        }
        let view_key = (hidden.to_vec(), models.map(<[String]>::to_vec));
        views
            .entry(hash)
            .or_default()
            .push((view_key, Arc::clone(&view)));
        view
    }

    /// Resolves the model a request names, for `key`.
    pub fn resolve(&self, asked: &str, key: &KeyPolicy) -> Result<Resolved, ModelRefusal> {
        let catalog = self.catalog();
        let offer = &catalog.offer;
        if offer.hides(asked, key) {
            return Err(ModelRefusal::NotFound);
        }
        let target = offer.aliases.get(asked).map_or(asked, String::as_str);
        if !catalog.base.iter().any(|m| slug(m) == Some(target)) {
            return Err(ModelRefusal::NotFound);
        }
        if !key.allows(asked, target) {
            return Err(ModelRefusal::NotAllowed);
        }
        let exclude_plans = catalog
            .plans
            .iter()
            .filter(|(_, slugs)| !slugs.contains(target))
            .map(|(plan, _)| plan.clone())
            .collect();
        Ok(Resolved {
            slug: target.to_owned(),
            exclude_plans,
        })
    }
}

/// The models of `base` and the aliases of `offer` that `key` sees.
fn filter(offer: &Offer, base: &[Value], key: &KeyPolicy) -> Vec<Value> {
    let aliases = offer.aliases.iter().filter_map(|(alias, target)| {
        let info = base.iter().find(|m| slug(m) == Some(target.as_str()))?;
        Some(renamed(info, alias))
    });
    let all: Vec<Value> = base.iter().cloned().chain(aliases).collect();
    all.into_iter()
        .filter(|m| {
            let name = slug(m).unwrap_or_default();
            let target = offer.aliases.get(name).map_or(name, String::as_str);
            !offer.hides(name, key) && key.allows(name, target)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::domain::{Limits, TenantPolicy};

    fn registry(aliases: &[(&str, &str)], hidden: &[&str]) -> ModelRegistry {
        let mut settings = crate::settings::Settings::defaults().unwrap().models;
        settings.catalog = vec!["gpt-5.5".into(), "gpt-5.4".into()];
        settings.aliases = aliases
            .iter()
            .map(|(a, s)| ((*a).to_owned(), (*s).to_owned()))
            .collect();
        settings.hidden = hidden.iter().map(|h| (*h).to_owned()).collect();
        ModelRegistry::new(&settings)
    }

    fn names(models: &[Value]) -> Vec<&str> {
        models.iter().filter_map(slug).collect()
    }

    #[test]
    fn aliases_resolve_and_hidden_names_are_not_found() {
        let r = registry(&[("codex", "gpt-5.4")], &["gpt-5.4"]);
        let key = KeyPolicy::unrestricted("k");
        assert_eq!(names(&r.visible(&key)), ["gpt-5.5", "codex"]);
        assert_eq!(r.resolve("codex", &key).unwrap().slug, "gpt-5.4");
        assert_eq!(r.resolve("gpt-5.4", &key), Err(ModelRefusal::NotFound));
        assert_eq!(r.resolve("nope", &key), Err(ModelRefusal::NotFound));
    }

    #[test]
    fn the_allow_list_and_the_tenant_filter_per_key() {
        let r = registry(&[("codex", "gpt-5.4")], &[]);
        let mut key = KeyPolicy::unrestricted("k");
        key.models = Some(vec!["gpt-5.4".into()]);
        assert_eq!(names(&r.visible(&key)), ["gpt-5.4", "codex"]);
        assert_eq!(r.resolve("gpt-5.5", &key), Err(ModelRefusal::NotAllowed));
        key.models = None;
        key.tenant = Some(Arc::new(TenantPolicy {
            id: "t".into(),
            name: "t".into(),
            limits: Limits::default(),
            hidden_models: vec!["gpt-5.5".into()],
        }));
        assert_eq!(names(&r.visible(&key)), ["gpt-5.4", "codex"]);
        assert_eq!(r.resolve("gpt-5.5", &key), Err(ModelRefusal::NotFound));
    }

    #[test]
    fn a_fetched_catalog_replaces_the_fallback_and_routes_by_plan() {
        let r = registry(&[], &[]);
        r.set_plan_catalog("plus", vec![json!({"slug": "gpt-5.5", "priority": 0})]);
        r.set_plan_catalog(
            "pro",
            vec![
                json!({"slug": "gpt-5.5", "priority": 0}),
                json!({"slug": "gpt-6", "priority": 1}),
            ],
        );
        let key = KeyPolicy::unrestricted("k");
        assert_eq!(names(&r.visible(&key)), ["gpt-5.5", "gpt-6"]);
        assert_eq!(r.resolve("gpt-6", &key).unwrap().exclude_plans, ["plus"]);
        assert!(r.resolve("gpt-5.5", &key).unwrap().exclude_plans.is_empty());
        assert_eq!(r.resolve("gpt-5.4", &key), Err(ModelRefusal::NotFound));
    }

    #[test]
    fn a_new_offer_applies_to_the_next_request_and_keeps_the_fetched_catalogs() {
        let r = registry(&[], &[]);
        let key = KeyPolicy::unrestricted("k");
        assert_eq!(r.resolve("codex", &key), Err(ModelRefusal::NotFound));
        r.set_plan_catalog("plus", vec![json!({"slug": "gpt-5.5", "priority": 0})]);
        let before = r.view(&key);
        let mut settings = crate::settings::Settings::defaults().unwrap().models;
        settings.aliases.insert("codex".into(), "gpt-5.5".into());
        settings.hidden = vec!["gpt-5.5".into()];
        r.reconfigure(&settings);
        assert_eq!(r.resolve("codex", &key).unwrap().slug, "gpt-5.5");
        assert_eq!(r.resolve("gpt-5.5", &key), Err(ModelRefusal::NotFound));
        assert_eq!(r.fetched_plans(), ["plus"]);
        assert!(!Arc::ptr_eq(&before, &r.view(&key)), "views are built anew");
        assert_eq!(names(&r.visible(&key)), ["codex"]);
    }

    #[test]
    fn a_view_is_built_once_per_kind_of_caller_and_per_catalog() {
        let r = registry(&[], &[]);
        let (alice, bob) = (KeyPolicy::unrestricted("a"), KeyPolicy::unrestricted("b"));
        let mut limited = KeyPolicy::unrestricted("c");
        limited.models = Some(vec!["gpt-5.4".into()]);
        let shared = r.view(&alice);
        assert!(Arc::ptr_eq(&shared, &r.view(&bob)));
        let own = r.view(&limited);
        assert!(!Arc::ptr_eq(&shared, &own));
        assert_eq!(names(&own.models), ["gpt-5.4"]);
        assert!(Arc::ptr_eq(&own, &r.view(&limited)));
        r.set_plan_catalog("plus", vec![json!({"slug": "gpt-6", "priority": 0})]);
        let fresh = r.view(&alice);
        assert!(!Arc::ptr_eq(&shared, &fresh));
        assert_eq!(names(&fresh.models), ["gpt-6"]);
    }
}
