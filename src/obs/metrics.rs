//! Prometheus metrics (`prometheus-client`). Each component owns its families: it registers them
//! on the one [`Registry`] when startup builds it (`register(&mut Registry)`), keeps the handles,
//! and updates them with atomics on its own path — the request path never looks anything up by
//! name. The admin plane encodes the registry on `GET /metrics` ([`Exposition`]), after the
//! steps that bring gauges of state kept elsewhere up to date ([`BeforeEncoding`]). No family
//! carries a prompt, an output, a token, a key or an email; every label has a bounded set of
//! values.

use std::fmt::{self, Write};

use futures_util::future::LocalBoxFuture;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
pub use prometheus_client::registry::Registry;

/// Implements `Hash` for a label set over a fast, fixed-seed hash of its fields, which the
/// family's map (std's `HashMap`: SipHash, not configurable in `prometheus-client`) then hashes
/// as one `u64`. Every request looks a few label sets up; hashing their text with SipHash field
/// by field cost several times more. Consistent with the derived `Eq`: equal fields, equal hash.
/// Label values are bounded and not a client's choice, so a fixed seed invites no flooding.
macro_rules! cheap_hash {
    ($labels:ty { $($field:ident),+ $(,)? }) => {
        impl ::std::hash::Hash for $labels {
            fn hash<H: ::std::hash::Hasher>(&self, state: &mut H) {
                let mut fast = $crate::obs::metrics::fast_hasher();
                $( ::std::hash::Hash::hash(&self.$field, &mut fast); )+
                state.write_u64(::std::hash::Hasher::finish(&fast));
            }
        }
    };
}

pub(crate) use cheap_hash;

/// The hasher behind [`cheap_hash!`].
pub fn fast_hasher() -> foldhash::fast::FoldHasher<'static> {
    use std::hash::BuildHasher;
    static SEED: foldhash::fast::FixedState =
        foldhash::fast::FixedState::with_seed(0x636f_6465_7872);
    SEED.build_hasher()
}

/// Every family's name starts with this (`codex_relay_…`).
pub const PREFIX: &str = "codex_relay";

/// The registry every component registers on.
pub fn registry() -> Registry {
    Registry::with_prefix(PREFIX)
}

/// Bucket bounds, in seconds, for request durations and time to first byte: from a millisecond
/// (a refused request) to five minutes (a long reasoning stream), about three per decade.
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

/// A histogram with [`LATENCY_BUCKETS`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The registry in the OpenMetrics text format.
pub fn encode_text(registry: &Registry) -> Result<String, fmt::Error> {
    let mut text = String::new();
    encode(&mut text, registry)?;
    Ok(text)
}

/// Work a component does right before each scrape is encoded: gauges that mirror state kept
/// elsewhere (an actor's, the store's) are read here, once per scrape, instead of being kept up
/// to date on the request path.
pub trait BeforeEncoding: Send + Sync {
    /// Brings the component's families up to date; a failure leaves them as they are (the
    /// component says why in its log).
    fn refresh(&self) -> LocalBoxFuture<'_, ()>;
}

/// The registry as the admin plane serves it: frozen once startup has registered every family,
/// with the steps that run before each encoding.
pub struct Exposition {
    registry: Registry,
    before: Vec<Box<dyn BeforeEncoding>>,
}

impl Exposition {
    pub fn new(registry: Registry) -> Exposition {
        Exposition {
            registry,
            before: Vec::new(),
        }
    }

    /// Runs `step` before every encoding, after the steps added before it.
    pub fn before_encoding(mut self, step: impl BeforeEncoding + 'static) -> Exposition {
        self.before.push(Box::new(step));
        self
    }

    /// Every family, brought up to date, in the OpenMetrics text format.
    pub async fn encode(&self) -> Result<String, fmt::Error> {
        for step in &self.before {
            step.refresh().await;
        }
        encode_text(&self.registry)
    }
}

/// `codex_relay_build_info{version, commit} 1`: which build is running.
pub fn register_build_info(registry: &mut Registry) {
    let info: Family<Vec<(&'static str, &'static str)>, Gauge> = Family::default();
    info.get_or_create(&vec![
        ("version", env!("CARGO_PKG_VERSION")),
        (
            "commit",
            option_env!("CODEX_RELAY_COMMIT").unwrap_or("unknown"),
        ),
    ])
    .set(1);
    registry.register("build_info", "The running build: version and commit", info);
}

/// Text the relay did not choose (an operator's label or tenant name, the plan an issuer's token
/// names, a model slug the upstream's catalog names), escaped as the exposition format requires:
/// prometheus-client writes label values as given, and a single `"` would make Prometheus refuse
/// the whole scrape. `T` owns the text: a `String`, or an `Arc<str>` that every request naming it
/// shares (building the label then copies nothing).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Text<T = String>(pub T);

impl<T: AsRef<str>> EncodeLabelValue for Text<T> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        for c in self.0.as_ref().chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_is_named_under_the_prefix() {
        let mut registry = registry();
        register_build_info(&mut registry);
        let text = encode_text(&registry).unwrap();
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            text.contains(&format!(
                "codex_relay_build_info{{version=\"{version}\",commit=\""
            )),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    /// Sets its gauge to how many times it ran.
    struct CountRuns(Gauge);

    impl BeforeEncoding for CountRuns {
        fn refresh(&self) -> LocalBoxFuture<'_, ()> {
            self.0.inc();
            Box::pin(async {})
        }
    }

    #[actix_web::test]
    async fn the_steps_before_encoding_run_before_every_scrape() {
        let mut registry = registry();
        let runs = Gauge::default();
        registry.register("runs", "Steps run", runs.clone());
        let exposition = Exposition::new(registry).before_encoding(CountRuns(runs));
        assert!(exposition
            .encode()
            .await
            .unwrap()
            .contains("codex_relay_runs 1\n"));
        assert!(exposition
            .encode()
            .await
            .unwrap()
            .contains("codex_relay_runs 2\n"));
    }

    #[test]
    fn text_the_relay_did_not_choose_is_escaped() {
        use prometheus_client::encoding::EncodeLabelSet;
        use std::sync::Arc;

        #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
        struct Labels {
            owned: Text,
            shared: Text<Arc<str>>,
        }
        let mut registry = registry();
        let family: Family<Labels, Gauge> = Family::default();
        registry.register("named", "Named things", family.clone());
        let labels = Labels {
            owned: Text("a \"b\"".to_owned()),
            shared: Text(Arc::from("c\\d\ne")),
        };
        family.get_or_create(&labels).set(1);
        let text = encode_text(&registry).unwrap();
        assert!(
            text.contains(r#"codex_relay_named{owned="a \"b\"",shared="c\\d\ne"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn latency_buckets_rise_from_a_millisecond_to_five_minutes() {
        assert_eq!(LATENCY_BUCKETS[0], 0.001);
        assert_eq!(LATENCY_BUCKETS[LATENCY_BUCKETS.len() - 1], 300.0);
        assert!(LATENCY_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }
}
