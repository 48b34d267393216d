//! The mock's own tests of bench mode: the shapes a load test relies on (sizes, event counts,
//! chunking, a final `response.completed`), the marker, and that nothing is recorded.

use super::*;

async fn start_bench() -> MockUpstream {
    bench::start("127.0.0.1:0", 2, None).await.unwrap().0
}

async fn bench_post(
    mock: &MockUpstream,
    body: &Value,
) -> awc::ClientResponse<impl futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>>>
{
    awc::Client::default()
        .post(format!("{}/responses", mock.url()))
        .insert_header(("authorization", "Bearer bench"))
        .send_json(body)
        .await
        .unwrap()
}

#[actix_rt::test]
async fn the_fast_answer_is_58_events_of_about_18_kb_in_one_response() {
    let mock = start_bench().await;
    let mut resp = bench_post(&mock, &codex_body("bench fast")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/event-stream");
    assert_eq!(header("x-codex-primary-used-percent"), "12.5");
    assert!(header("x-request-id").starts_with("req_"));
    let body = resp.body().limit(1 << 20).await.unwrap();
    assert!(
        (16_000..=20_000).contains(&body.len()),
        "{} bytes",
        body.len()
    );

    let events = parse_sse(&body);
    assert_eq!(events.len(), 58);
    assert_sequenced(&events);
    assert_eq!(of_type(&events, "response.output_text.delta").len(), 48);
    let reasoning = &of_type(&events, "response.output_item.done")[0]["item"];
    assert!(reasoning["encrypted_content"].as_str().unwrap().len() > 1000);
    let completed = events.last().unwrap();
    assert_eq!(completed["type"], "response.completed");
    let usage = &completed["response"]["usage"];
    assert_eq!(usage["input_tokens"], 10_000);
    assert!(usage["input_tokens_details"]["cached_tokens"].is_u64());
    assert!(usage["output_tokens_details"]["reasoning_tokens"].is_u64());
    assert_eq!(completed["response"]["output"].as_array().unwrap().len(), 2);
    mock.stop().await;
}

#[actix_rt::test]
async fn a_paced_answer_sends_its_first_output_item_at_once_then_one_delta_per_chunk() {
    let mock = start_bench().await;
    let started = Instant::now();
    // A string input is read too (the marker is looked for in any text of `input`).
    let body = json!({"model": "gpt-5.5", "input": "bench paced 6 50", "stream": true});
    let mut resp = bench_post(&mock, &body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let first = resp.next().await.unwrap().unwrap();
    let kinds: Vec<_> = parse_sse(&first)
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
    let rest = resp.body().limit(1 << 20).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(5 * 50));
    let mut all = first.to_vec();
    all.extend_from_slice(&rest);
    let events = parse_sse(&all);
    assert_eq!(events.len(), 6 + 6, "4 + 4 deltas + 4");
    assert_sequenced(&events);
    assert_eq!(of_type(&events, "response.output_text.delta").len(), 4);
    assert_eq!(events.last().unwrap()["type"], "response.completed");
    mock.stop().await;
}

#[actix_rt::test]
async fn bench_mode_checks_the_bearer_records_nothing_and_still_serves_the_catalog() {
    let mock = start_bench().await;
    let resp = awc::Client::default()
        .post(format!("{}/responses", mock.url()))
        .send_json(&codex_body("bench fast"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let mut resp = bench_post(&mock, &codex_body("bench fast")).await;
    resp.body().limit(1 << 20).await.unwrap();

    let mut models = awc::Client::default()
        .get(format!("{}/models?client_version=0.125.0", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), StatusCode::OK);
    let catalog: Value = models.json().await.unwrap();
    assert_eq!(catalog["models"][0]["slug"], "gpt-5.5");
    assert!(
        mock.state.requests().is_empty(),
        "bench mode records nothing"
    );
    mock.stop().await;
}

/// Over TLS, a client trusting the written certificate (as the relay does with
/// `upstream.ca_file`) negotiates HTTP/2 and gets the same answer.
#[actix_rt::test]
async fn the_tls_listener_serves_http2_to_a_client_trusting_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("mock.pem");
    let tls = bench::TlsListen {
        listen: "127.0.0.1:0",
        cert_out: &cert,
    };
    let (_mock, tls_addr) = bench::start("127.0.0.1:0", 1, Some(tls)).await.unwrap();
    let trusted = codex_relay::upstream::outbound::Outbound::load(Some(&cert)).unwrap();
    let client = trusted.client(Duration::from_secs(5), Duration::from_secs(5));
    let mut resp = client
        .post(format!("https://{}/responses", tls_addr.unwrap()))
        .insert_header(("authorization", "Bearer bench"))
        .send_json(&codex_body("bench fast"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), actix_web::http::Version::HTTP_2);
    let body = resp.body().limit(1 << 20).await.unwrap();
    assert_eq!(parse_sse(&body).len(), 58);

    // A client with only the public roots refuses the self-signed certificate.
    let untrusted = codex_relay::upstream::outbound::Outbound::default()
        .client(Duration::from_secs(5), Duration::from_secs(5));
    let refused = untrusted
        .post(format!("https://{}/responses", tls_addr.unwrap()))
        .send_json(&codex_body("bench fast"))
        .await;
    assert!(refused.is_err());
}
