//! The request families on `GET /metrics`: requests by plane, route pattern, method, status and
//! resolved model; durations and first bytes; how streams ended; requests in flight back at 0.
//! [`Scrape`] reads the OpenMetrics text the way Prometheus does, sample by sample.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;

use crate::helpers::{body, client, eventually, read_all, spawn_app_with, TestApp};

/// One `GET /metrics`, parsed into samples.
pub struct Scrape {
    pub text: String,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    /// Scrapes the relay's admin listener with `token` (none when empty).
    pub async fn of(app: &TestApp, token: &str) -> Scrape {
        let mut response = app.admin("GET", "/metrics", token).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let text = String::from_utf8(read_all(&mut response).await.to_vec()).unwrap();
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(sample)
            .collect();
        Scrape { text, samples }
    }

    /// The sum of the samples named `name` whose labels include every pair of `labels`; `None`
    /// when there is none.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, value)| *value)
            .collect();
        (!matching.is_empty()).then(|| matching.iter().sum())
    }

    /// Like [`Scrape::value`], 0 when there is no such sample.
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }
}

/// `name{label="value",…} value` (the labels may be absent).
fn sample(line: &str) -> (String, BTreeMap<String, String>, f64) {
    let (series, value) = line.rsplit_once(' ').unwrap();
    let value: f64 = value.parse().unwrap();
    let Some((name, labels)) = series.split_once('{') else {
        return (series.to_owned(), BTreeMap::new(), value);
    };
    let mut parsed = BTreeMap::new();
    let mut rest = labels.strip_suffix('}').unwrap();
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut text = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().unwrap() {
                (_, '\\') => text.push(chars.next().unwrap().1),
                (at, '"') => break at,
                (_, c) => text.push(c),
            }
        };
        parsed.insert(key.trim_start_matches(',').to_owned(), text);
        rest = &after[end + 1..];
    }
    (name.to_owned(), parsed, value)
}

const REQUESTS: &str = "codex_relay_requests_total";
const IN_FLIGHT: &str = "codex_relay_requests_in_flight";
const STREAMS: &str = "codex_relay_streams_total";

fn responses(status: &'static str, model: &'static str) -> [(&'static str, &'static str); 5] {
    [
        ("plane", "data"),
        ("route", "/v1/responses"),
        ("method", "POST"),
        ("status", status),
        ("model", model),
    ]
}

async fn open_metrics() -> TestApp {
    spawn_app_with(|s| s.metrics.open = true).await
}

#[actix_web::test]
async fn requests_are_counted_by_route_method_status_and_resolved_model() {
    let app = open_metrics().await;
    app.stream_events(&body("gpt-5.5", "hi", true)).await;
    let mut whole = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    whole.body().await.unwrap();
    let attacker = format!("gpt-attacker-{}", rand::random::<u32>());
    let unknown = app
        .responses()
        .send_json(&body(&attacker, "hi", false))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let refused = client()
        .post(app.url("/v1/responses"))
        .bearer_auth("sk-relay-not-a-key")
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let nowhere = app.get("/v1/nowhere/at/all").send().await.unwrap();
    assert_eq!(nowhere.status(), 404);
    let models = app.get("/v1/models").send().await.unwrap();
    assert_eq!(models.status(), 200);

    let scrape = Scrape::of(&app, "").await;
    assert_eq!(
        scrape.value(REQUESTS, &responses("200", "gpt-5.5")),
        Some(2.0)
    );
    // Neither an unknown model nor a refused key names a model.
    assert_eq!(scrape.value(REQUESTS, &responses("404", "")), Some(1.0));
    assert_eq!(scrape.value(REQUESTS, &responses("401", "")), Some(1.0));
    assert!(!scrape.text.contains(&attacker), "{}", scrape.text);
    let route = |route| [("plane", "data"), ("route", route), ("method", "GET")];
    assert_eq!(scrape.value(REQUESTS, &route("unmatched")), Some(1.0));
    assert!(!scrape.text.contains("nowhere"));
    assert_eq!(scrape.value(REQUESTS, &route("/v1/models")), Some(1.0));
    assert_eq!(
        scrape.value(STREAMS, &[("outcome", "completed")]),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(STREAMS, &[("outcome", "client_disconnected")]),
        Some(0.0)
    );
    let first_bytes = "codex_relay_time_to_first_byte_seconds_count";
    assert_eq!(
        scrape.value(first_bytes, &[("model", "gpt-5.5")]),
        Some(2.0)
    );
    assert_eq!(scrape.value(first_bytes, &[("model", "")]), None);
    let durations = "codex_relay_request_duration_seconds_count";
    let responses_route = [("plane", "data"), ("route", "/v1/responses")];
    assert_eq!(scrape.value(durations, &responses_route), Some(4.0));
    assert_eq!(scrape.value(IN_FLIGHT, &[("plane", "data")]), Some(0.0));
    // The scrape itself is the admin plane's one request in flight.
    assert_eq!(scrape.value(IN_FLIGHT, &[("plane", "admin")]), Some(1.0));
    // Per-key families are off unless asked for.
    assert!(!scrape.text.contains("codex_relay_key_"), "{}", scrape.text);

    let again = Scrape::of(&app, "").await;
    let scraped = [
        ("plane", "admin"),
        ("route", "/metrics"),
        ("method", "GET"),
        ("status", "200"),
    ];
    assert_eq!(again.value(REQUESTS, &scraped), Some(1.0));
    app.stop().await;
}

#[actix_web::test]
async fn a_stream_is_in_flight_until_its_client_goes_away() {
    let app = open_metrics().await;
    app.mock.state.set_event_delay(Duration::from_millis(100));
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", true))
        .await
        .unwrap();
    response.next().await.unwrap().unwrap();
    let during = Scrape::of(&app, "").await;
    assert_eq!(during.value(IN_FLIGHT, &[("plane", "data")]), Some(1.0));
    assert_eq!(during.value(REQUESTS, &responses("200", "gpt-5.5")), None);
    assert_eq!(
        during.value(
            "codex_relay_time_to_first_byte_seconds_count",
            &[("model", "gpt-5.5")]
        ),
        Some(1.0),
        "the held-back start was the first byte"
    );
    drop(response);
    let ended = eventually(5, || async {
        let after = Scrape::of(&app, "").await;
        after.value(STREAMS, &[("outcome", "client_disconnected")]) == Some(1.0)
            && after.value(IN_FLIGHT, &[("plane", "data")]) == Some(0.0)
    })
    .await;
    assert!(ended, "{}", Scrape::of(&app, "").await.text);
    let after = Scrape::of(&app, "").await;
    // A stream is answered 200 however it ends; it is counted once, when it ends.
    assert_eq!(
        after.value(REQUESTS, &responses("200", "gpt-5.5")),
        Some(1.0)
    );
    assert_eq!(after.value(STREAMS, &[("outcome", "completed")]), Some(0.0));
    app.stop().await;
}

#[actix_web::test]
async fn refusals_the_throttle_leaves_out_of_the_log_still_count_as_requests() {
    let app = spawn_app_with(|s| {
        s.metrics.open = true;
        s.limits.auth_failures_per_minute = 2;
    })
    .await;
    for _ in 0..5 {
        let guess = client()
            .get(app.url("/v1/models"))
            .bearer_auth("sk-relay-guess")
            .send()
            .await
            .unwrap();
        assert!([401, 429].contains(&guess.status().as_u16()));
    }
    let scrape = Scrape::of(&app, "").await;
    let models = |status| [("route", "/v1/models"), ("status", status)];
    assert_eq!(scrape.value(REQUESTS, &models("401")), Some(2.0));
    assert_eq!(scrape.value(REQUESTS, &models("429")), Some(3.0));
    assert_eq!(scrape.value(IN_FLIGHT, &[("plane", "data")]), Some(0.0));
    app.stop().await;
}

#[test]
fn a_sample_line_is_read_with_its_labels() {
    let (name, labels, value) = sample(r#"a_total{x="1",y="q\"uote, b"} 3"#);
    assert_eq!(name, "a_total");
    assert_eq!(labels["x"], "1");
    assert_eq!(labels["y"], "q\"uote, b");
    assert_eq!(value, 3.0);
    assert_eq!(sample("b 0.5").2, 0.5);
}
