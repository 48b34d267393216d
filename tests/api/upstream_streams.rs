//! An HTTP/2 upstream that allows few streams per connection (as every server sets some limit:
//! commonly 100 to 256): the relay opens another connection when its connections carry
//! `upstream.max_streams_per_connection` streams, instead of queueing a stream behind others that
//! may last minutes. A stream the upstream refuses unprocessed is sent again on the same account.
//!
//! The mock upstream (actix-web) cannot set that limit, so this upstream is a small HTTP/2 server
//! of its own, on the `h2` crate with the mock's certificate setup: each answer starts (the
//! relay's hold-back ends at the first output item) and then waits until the test lets it end.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::helpers::{read_all, spawn_app_with, sse_events, TestApp};
use crate::mock_upstream::tls;

/// An HTTPS upstream allowing `cap` streams per connection, whose answers wait for `release`.
struct CappedUpstream {
    url: String,
    cert: std::path::PathBuf,
    /// The connections (numbered as accepted) that carried a `POST /responses`.
    responses_connections: Arc<Mutex<HashSet<usize>>>,
    /// `POST /responses` streams received, refused ones included.
    responses: Arc<AtomicUsize>,
    release: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl CappedUpstream {
    /// Refuses (`REFUSED_STREAM`) the first `refuse` `POST /responses` streams it receives.
    async fn start(cap: u32, refuse: usize) -> CappedUpstream {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("upstream.pem");
        let mut config = tls::server_config(&cert).unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://localhost:{}",
            listener.local_addr().unwrap().port()
        );
        let responses_connections = Arc::new(Mutex::new(HashSet::new()));
        let (release, released) = watch::channel(false);
        let seen = Arc::clone(&responses_connections);
        let responses = Arc::new(AtomicUsize::new(0));
        let received = Arc::clone(&responses);
        actix_web::rt::spawn(async move {
            let accepted = AtomicUsize::new(0);
            while let Ok((tcp, _)) = listener.accept().await {
                let number = accepted.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                let released = released.clone();
                let seen = Arc::clone(&seen);
                let received = Arc::clone(&received);
                actix_web::rt::spawn(async move {
                    let tls = acceptor.accept(tcp).await.unwrap();
                    let mut connection = h2::server::Builder::new()
                        .max_concurrent_streams(cap)
                        .handshake::<_, Bytes>(tls)
                        .await
                        .unwrap();
                    while let Some(Ok((request, mut respond))) = connection.accept().await {
                        if request.uri().path() == "/responses" {
                            seen.lock().unwrap().insert(number);
                            if received.fetch_add(1, Ordering::SeqCst) < refuse {
                                respond.send_reset(h2::Reason::REFUSED_STREAM);
                                continue;
                            }
                        }
                        actix_web::rt::spawn(answer(request, respond, released.clone()));
                    }
                });
            }
        });
        CappedUpstream {
            url,
            cert,
            responses_connections,
            responses,
            release,
            _dir: dir,
        }
    }
}

impl CappedUpstream {
    fn connections(&self) -> usize {
        self.responses_connections.lock().unwrap().len()
    }

    /// The relay (one worker, one account) reaching this upstream, with `max_streams` per
    /// connection.
    async fn relay(&self, max_streams: usize) -> TestApp {
        let (url, cert) = (self.url.clone(), self.cert.clone());
        spawn_app_with(move |settings| {
            settings.upstream.base_url = url.parse().unwrap();
            settings.upstream.ca_file = Some(cert);
            settings.upstream.max_streams_per_connection = max_streams;
        })
        .await
    }
}

/// A Responses stream that starts at once and completes when `released` turns true; anything
/// else (the relay's catalog fetch) is not found.
async fn answer(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    mut released: watch::Receiver<bool>,
) {
    if request.uri().path() != "/responses" {
        let head = http::Response::builder().status(404).body(()).unwrap();
        let _ = respond.send_response(head, true);
        return;
    }
    let mut body = request.into_body();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let head = http::Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .body(())
        .unwrap();
    let mut send = respond.send_response(head, false).unwrap();
    let response = json!({"id": "resp_capped", "object": "response", "status": "in_progress"});
    let item = json!({"type": "message", "id": "msg_1", "role": "assistant", "content": []});
    let start = [
        event("response.created", json!({"response": response})),
        event(
            "response.output_item.added",
            json!({"output_index": 0, "item": item}),
        ),
    ]
    .concat();
    send.send_data(Bytes::from(start), false).unwrap();
    let _ = released.wait_for(|released| *released).await;
    let usage = json!({"input_tokens": 3, "output_tokens": 1, "total_tokens": 4});
    let completed = json!({"id": "resp_capped", "object": "response", "status": "completed",
        "output": [], "usage": usage});
    let end = event("response.completed", json!({"response": completed}));
    let _ = send.send_data(Bytes::from(end), true);
}

fn event(kind: &str, mut fields: Value) -> String {
    fields["type"] = json!(kind);
    format!("event: {kind}\ndata: {fields}\n\n")
}

#[actix_web::test]
async fn streams_past_a_connections_limit_go_over_another_connection() {
    let upstream = CappedUpstream::start(2, 0).await;
    let app = upstream.relay(2).await;
    let request = json!({"model": "gpt-5.5", "input": "hi", "stream": true});

    // Five streams open at once: every one has started while none has ended. Over one connection
    // the third would wait for one of the first two to end, which none does until released.
    let opened =
        futures_util::future::join_all((0..5).map(|_| app.responses().send_json(&request)));
    let mut streams = actix_web::rt::time::timeout(Duration::from_secs(30), opened)
        .await
        .expect("every stream starts while the others are open");
    for response in &streams {
        assert_eq!(response.as_ref().unwrap().status(), 200);
    }
    // Two streams per connection: three connections for five.
    assert_eq!(upstream.connections(), 3);

    upstream.release.send(true).unwrap();
    for response in &mut streams {
        let events = sse_events(&read_all(response.as_mut().unwrap()).await);
        assert_eq!(events.last().unwrap()["type"], "response.completed");
    }
    // Ended streams give their places back: the next two share a connection already open.
    for _ in 0..2 {
        let mut response = app.responses().send_json(&request).await.unwrap();
        let events = sse_events(&read_all(&mut response).await);
        assert_eq!(events.last().unwrap()["type"], "response.completed");
    }
    assert_eq!(upstream.connections(), 3);
    app.stop().await;
}

#[actix_web::test]
async fn a_stream_the_upstream_refused_goes_again_on_the_same_account() {
    let upstream = CappedUpstream::start(100, 1).await;
    upstream.release.send(true).unwrap();
    let app = upstream.relay(100).await;
    // The relay has one account: had the refusal counted as its failure, the request would have
    // had nowhere to go.
    let request = json!({"model": "gpt-5.5", "input": "hi", "stream": true});
    let events = app.stream_events(&request).await;
    assert_eq!(events.last().unwrap()["type"], "response.completed");
    assert_eq!(upstream.responses.load(Ordering::SeqCst), 2);
    let logs = app.logs();
    assert!(!logs.contains("upstream attempt failed"), "{logs}");
    assert!(!logs.contains("upstream request failed"), "{logs}");
    app.stop().await;
}
