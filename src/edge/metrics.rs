//! The request families of both planes: `requests_total`, `request_duration_seconds`,
//! `time_to_first_byte_seconds`, `streams_total` and `requests_in_flight`. Registered once at
//! startup; each plane gets its handle as app data ([`RequestMetrics`]). A request is recorded
//! where its access line is written (`context`): once, and for a stream when it ends.
//!
//! Every label is bounded: the route pattern the request matched (never its path), a standard
//! method or `other`, the status code, and the model the registry resolved (never the name the
//! client sent; escaped, as the catalog it comes from is the upstream's or the operator's). The hot path builds one label struct per family and touches atomics; the route
//! pattern and the resolved model are each read once per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use actix_web::dev::ServiceRequest;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::obs::metrics::{latency_histogram, Text};
use crate::upstream::sse::Terminal;

/// Which listener a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    Data,
    Admin,
}

impl Plane {
    fn name(self) -> &'static str {
        match self {
            Plane::Data => "data",
            Plane::Admin => "admin",
        }
    }
}

/// How a stream ended, as `streams_total` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOutcome {
    /// The upstream's `response.completed` was forwarded.
    Completed,
    /// The upstream's `response.failed` was forwarded.
    Failed,
    /// The upstream's `response.incomplete` was forwarded.
    Incomplete,
    /// The client went away first.
    ClientDisconnected,
    /// The upstream closed, failed or fell silent before a terminal event; the relay wrote its
    /// own `response.failed`.
    UpstreamCut,
}

impl StreamOutcome {
    const ALL: [StreamOutcome; 5] = [
        StreamOutcome::Completed,
        StreamOutcome::Failed,
        StreamOutcome::Incomplete,
        StreamOutcome::ClientDisconnected,
        StreamOutcome::UpstreamCut,
    ];

    /// The outcome's name: the metrics' label and the audit row's `stream_outcome`.
    pub fn name(self) -> &'static str {
        match self {
            StreamOutcome::Completed => "completed",
            StreamOutcome::Failed => "failed",
            StreamOutcome::Incomplete => "incomplete",
            StreamOutcome::ClientDisconnected => "client_disconnected",
            StreamOutcome::UpstreamCut => "upstream_cut",
        }
    }

    /// The outcome of a stream the relay ended as `how` (its access line's word: `completed`,
    /// `client_disconnected`, or the code of the relay's own failure event) after the upstream's
    /// `terminal` event, if one came.
    pub fn of(how: &str, terminal: Option<&Terminal>) -> StreamOutcome {
        match (how, terminal) {
            ("client_disconnected", _) => StreamOutcome::ClientDisconnected,
            ("completed", Some(Terminal::Completed { .. })) => StreamOutcome::Completed,
            ("completed", Some(Terminal::Failed { .. })) => StreamOutcome::Failed,
            ("completed", Some(Terminal::Incomplete)) => StreamOutcome::Incomplete,
            _ => StreamOutcome::UpstreamCut,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    plane: &'static str,
    route: Arc<str>,
    method: &'static str,
    status: u16,
    model: Text<Arc<str>>,
}
crate::obs::metrics::cheap_hash!(RequestLabels {
    plane,
    route,
    method,
    status,
    model
});

#[derive(Debug, Clone, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    plane: &'static str,
    route: Arc<str>,
}
crate::obs::metrics::cheap_hash!(RouteLabels { plane, route });

#[derive(Debug, Clone, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: Text<Arc<str>>,
}
crate::obs::metrics::cheap_hash!(ModelLabels { model });

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PlaneLabels {
    plane: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// A family of histograms with the latency buckets.
fn histograms<L: Clone + std::hash::Hash + Eq>() -> Histograms<L> {
    Family::new_with_constructor(latency_histogram)
}

/// The families both planes record into.
struct Families {
    requests: Family<RequestLabels, Counter>,
    durations: Histograms<RouteLabels>,
    first_bytes: Histograms<ModelLabels>,
    /// One counter per [`StreamOutcome`], in the order of [`StreamOutcome::ALL`].
    streams: [Counter; 5],
    /// The `route` of a request that matched no route.
    unmatched: Arc<str>,
    /// The `model` of a request without a resolved model.
    no_model: Arc<str>,
    routes: StaticRoutes,
}

/// The most static routes kept: more than both planes have (a bound, not a tuning knob).
const MAX_STATIC_ROUTES: usize = 128;

/// The route labels of the routes without a dynamic segment, by path. Finding a request's route
/// pattern walks the router's whole resource map and builds the pattern as a new string; for a
/// route whose pattern is its path (`/v1/responses`: nearly every request) it is looked up here
/// instead, after the first time. Only a path equal to a registered pattern is kept, so what a
/// client sends cannot grow it.
#[derive(Default)]
struct StaticRoutes(RwLock<RouteByPath>);

type RouteByPath = HashMap<Box<str>, Arc<str>, foldhash::fast::FixedState>;

impl StaticRoutes {
    fn route_of(&self, req: &ServiceRequest, unmatched: &Arc<str>) -> Arc<str> {
        let path = req.path();
        if let Some(route) = self.read().get(path) {
            return Arc::clone(route);
        }
        let Some(pattern) = req.match_pattern() else {
            return Arc::clone(unmatched);
        };
        let route: Arc<str> = Arc::from(pattern);
        if *route == *path && !route.contains(['{', '*']) {
            let mut known = self.0.write().unwrap_or_else(PoisonError::into_inner);
            if known.len() < MAX_STATIC_ROUTES {
                known.insert(Box::from(path), Arc::clone(&route));
            }
        }
        route
    }

    fn read(&self) -> RwLockReadGuard<'_, RouteByPath> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One plane's handle on the request families; cheap to clone.
#[derive(Clone)]
pub struct RequestMetrics {
    plane: Plane,
    in_flight: Gauge,
    families: Arc<Families>,
}

/// The handles of the two planes, as [`RequestMetrics::register`] returns them.
pub struct PlaneMetrics {
    pub data: RequestMetrics,
    pub admin: RequestMetrics,
}

impl RequestMetrics {
    /// Registers the request families; every stream outcome and both planes' in-flight gauges
    /// exist from the start (at 0).
    pub fn register(registry: &mut Registry) -> PlaneMetrics {
        let streams: Family<OutcomeLabels, Counter> = Family::default();
        let in_flight: Family<PlaneLabels, Gauge> = Family::default();
        let families = Arc::new(Families {
            requests: Family::default(),
            durations: histograms(),
            first_bytes: histograms(),
            streams: StreamOutcome::ALL.map(|outcome| {
                let labels = OutcomeLabels {
                    outcome: outcome.name(),
                };
                streams.get_or_create(&labels).clone()
            }),
            unmatched: Arc::from("unmatched"),
            no_model: Arc::from(""),
            routes: StaticRoutes::default(),
        });
        register_families(registry, &families, streams, in_flight.clone());
        let plane = |plane: Plane| RequestMetrics {
            plane,
            in_flight: in_flight
                .get_or_create(&PlaneLabels {
                    plane: plane.name(),
                })
                .clone(),
            families: Arc::clone(&families),
        };
        PlaneMetrics {
            data: plane(Plane::Data),
            admin: plane(Plane::Admin),
        }
    }

    /// A request has arrived: it is in flight until its [`RequestRecord`] has been recorded or
    /// dropped.
    pub fn arrived(&self, req: &ServiceRequest) -> RequestRecord {
        let families = &self.families;
        let route = families.routes.route_of(req, &families.unmatched);
        self.in_flight.inc();
        RequestRecord {
            plane: self.plane,
            families: Arc::clone(&self.families),
            route,
            method: method_label(req.method().as_str()),
            model: None,
            in_flight: InFlight {
                gauge: self.in_flight.clone(),
                left: AtomicBool::new(false),
            },
        }
    }
}

fn register_families(
    registry: &mut Registry,
    families: &Families,
    streams: Family<OutcomeLabels, Counter>,
    in_flight: Family<PlaneLabels, Gauge>,
) {
    registry.register(
        "requests",
        "Requests answered, by plane, matched route, method, status code and resolved model",
        families.requests.clone(),
    );
    registry.register(
        "request_duration_seconds",
        "From a request's arrival to its answer's end (a stream's last byte), by plane and route",
        families.durations.clone(),
    );
    registry.register(
        "time_to_first_byte_seconds",
        "From a Responses call's arrival to the first byte of its successful answer, by model",
        families.first_bytes.clone(),
    );
    registry.register(
        "streams",
        "Streamed Responses answers that ended, by how they ended",
        streams,
    );
    registry.register(
        "requests_in_flight",
        "Requests arrived and not yet answered (a stream until it ends), by plane",
        in_flight,
    );
}

/// A request's method as a label: the standard methods by name, anything else `other` (a
/// client may send any token as a method).
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

/// One request's place among those in flight: left once, when its record is written or, at the
/// latest, when it is dropped (a handler cancelled, a stream dropped) — so no path leaks it.
struct InFlight {
    gauge: Gauge,
    left: AtomicBool,
}

impl InFlight {
    fn leave(&self) {
        if !self.left.swap(true, Ordering::Relaxed) {
            self.gauge.dec();
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.leave();
    }
}

/// What the request families record about one request, once its answer is known.
pub struct RequestRecord {
    plane: Plane,
    families: Arc<Families>,
    route: Arc<str>,
    method: &'static str,
    /// The model the registry resolved for a Responses call.
    model: Option<Arc<str>>,
    in_flight: InFlight,
}

impl RequestRecord {
    /// The model the registry resolved for this request, if any (never the client's text).
    pub fn with_model(mut self, model: Option<Arc<str>>) -> RequestRecord {
        self.model = model;
        self
    }

    /// A whole answer has left with `status`, `elapsed` after the request arrived. A successful
    /// answer of a model was its first byte too.
    pub fn answered(&self, status: u16, elapsed: Duration) {
        if (200..300).contains(&status) {
            self.first_byte(elapsed);
        }
        self.count(status, elapsed);
    }

    /// The first byte of a successful model answer is leaving, `elapsed` after arrival.
    pub fn first_byte(&self, elapsed: Duration) {
        if let Some(model) = &self.model {
            let labels = ModelLabels {
                model: Text(Arc::clone(model)),
            };
            let first_bytes = &self.families.first_bytes;
            first_bytes
                .get_or_create(&labels)
                .observe(elapsed.as_secs_f64());
        }
    }

    /// A stream (answered 200) has ended as `outcome`, `elapsed` after the request arrived.
    pub fn stream_ended(&self, outcome: StreamOutcome, elapsed: Duration) {
        let index = StreamOutcome::ALL.iter().position(|o| *o == outcome);
        if let Some(counter) = index.and_then(|i| self.families.streams.get(i)) {
            counter.inc();
        }
        self.count(200, elapsed);
    }

    fn count(&self, status: u16, elapsed: Duration) {
        let families = &self.families;
        let plane = self.plane.name();
        let model = self.model.as_ref().unwrap_or(&families.no_model);
        let labels = RequestLabels {
            plane,
            route: Arc::clone(&self.route),
            method: self.method,
            status,
            model: Text(Arc::clone(model)),
        };
        families.requests.get_or_create(&labels).inc();
        let route = RouteLabels {
            plane,
            route: Arc::clone(&self.route),
        };
        let durations = &families.durations;
        durations
            .get_or_create(&route)
            .observe(elapsed.as_secs_f64());
        self.in_flight.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    use crate::domain::Usage;
    use crate::obs::metrics::{encode_text, registry};

    #[test]
    fn a_stream_end_maps_to_its_outcome() {
        let completed = Terminal::Completed {
            usage: Some(Usage::default()),
        };
        let failed = Terminal::Failed {
            code: Some("server_error".into()),
        };
        let cases = [
            ("completed", Some(&completed), StreamOutcome::Completed),
            ("completed", Some(&failed), StreamOutcome::Failed),
            (
                "completed",
                Some(&Terminal::Incomplete),
                StreamOutcome::Incomplete,
            ),
            (
                "client_disconnected",
                None,
                StreamOutcome::ClientDisconnected,
            ),
            (
                "client_disconnected",
                Some(&completed),
                StreamOutcome::ClientDisconnected,
            ),
            ("upstream_disconnected", None, StreamOutcome::UpstreamCut),
            ("upstream_idle_timeout", None, StreamOutcome::UpstreamCut),
            ("completed", None, StreamOutcome::UpstreamCut),
        ];
        for (how, terminal, outcome) in cases {
            assert_eq!(StreamOutcome::of(how, terminal), outcome, "{how}");
        }
    }

    #[test]
    fn a_model_the_relay_did_not_name_is_escaped() {
        let mut registry = registry();
        let planes = RequestMetrics::register(&mut registry);
        let req = TestRequest::post().uri("/v1/responses").to_srv_request();
        let record = planes.data.arrived(&req);
        let record = record.with_model(Some(Arc::from(r#"gpt "5" \ x"#)));
        record.answered(200, Duration::from_millis(5));
        let text = encode_text(&registry).unwrap();
        let escaped = r#"model="gpt \"5\" \\ x""#;
        assert!(text.contains(escaped), "{text}");
        assert!(!text.contains(r#""5""#), "{text}");
    }

    #[actix_web::test]
    async fn a_static_route_is_found_once_and_a_dynamic_one_each_time() {
        use actix_web::{test, web, App, HttpResponse};
        let mut registry = registry();
        let planes = RequestMetrics::register(&mut registry);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = {
            let (metrics, seen) = (planes.data.clone(), Arc::clone(&seen));
            move |req: actix_web::dev::ServiceRequest,
                  next: actix_web::middleware::Next<actix_web::body::BoxBody>| {
                let record = metrics.arrived(&req);
                seen.lock().unwrap().push(record.route.to_string());
                next.call(req)
            }
        };
        let app = test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(record))
                .route("/v1/responses", web::post().to(HttpResponse::Ok))
                .route("/v1/models/{id}", web::get().to(HttpResponse::Ok)),
        )
        .await;
        for uri in [
            "/v1/responses",
            "/v1/responses",
            "/v1/models/a",
            "/v1/models/b",
            "/nope",
        ] {
            let req = test::TestRequest::post().uri(uri).to_request();
            test::call_service(&app, req).await;
        }
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "/v1/responses",
                "/v1/responses",
                "/v1/models/{id}",
                "/v1/models/{id}",
                "unmatched"
            ]
        );
        let known = planes.data.families.routes.read();
        assert_eq!(known.len(), 1, "only the static route is kept");
        assert_eq!(&**known.get("/v1/responses").unwrap(), "/v1/responses");
    }

    #[test]
    fn a_method_is_a_standard_one_or_other() {
        assert_eq!(method_label("POST"), "POST");
        assert_eq!(method_label("OPTIONS"), "OPTIONS");
        assert_eq!(method_label("post"), "other");
        assert_eq!(method_label("X-ATTACKER-METHOD-1234"), "other");
    }

    #[test]
    fn a_request_leaves_the_in_flight_gauge_once_whatever_happens() {
        let mut registry = registry();
        let planes = RequestMetrics::register(&mut registry);
        let req = TestRequest::post().uri("/v1/responses").to_srv_request();
        let recorded = planes.data.arrived(&req);
        let dropped = planes.data.arrived(&req);
        let admin = planes.admin.arrived(&req);
        assert_eq!(planes.data.in_flight.get(), 2);
        recorded.answered(200, Duration::from_millis(5));
        recorded.answered(200, Duration::from_millis(5));
        drop(recorded);
        assert_eq!(planes.data.in_flight.get(), 1);
        drop(dropped);
        assert_eq!(planes.data.in_flight.get(), 0);
        assert_eq!(planes.admin.in_flight.get(), 1);
        drop(admin);
        let text = encode_text(&registry).unwrap();
        assert!(
            text.contains("codex_relay_requests_in_flight{plane=\"data\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("codex_relay_streams_total{outcome=\"upstream_cut\"} 0"),
            "{text}"
        );
    }
}
