//! An HTTP/1.1 upstream that closes an idle connection just as the relay sends the next request
//! on it: every server closes idle connections after its own keep-alive (actix-web's default is
//! 5 s), and a request the relay starts on the pooled connection at that moment finds it closed
//! with no answer. That is the connection's end, not the account's failure: the request goes once
//! more, on a new connection, and the client gets its answer.
//!
//! The race cannot be timed from a test, so a proxy in front of the mock plays the server's part:
//! when told to, it closes the next connection that carries a second request, without passing
//! that request on.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::helpers::{body, read_all, spawn_app_with, TestApp};

/// A TCP proxy to the mock that can close a kept connection instead of passing on its next
/// request.
#[derive(Clone, Default)]
struct ClosingProxy {
    /// Close the next connection that carries a second request (once).
    close_next_reused: Arc<AtomicBool>,
    /// Connections accepted from the relay.
    accepted: Arc<AtomicUsize>,
    /// Requests closed instead of passed on.
    closed: Arc<AtomicUsize>,
}

impl ClosingProxy {
    /// Listens on a loopback port in front of `upstream`; returns its address.
    fn start(&self, upstream: Vec<SocketAddr>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let proxy = self.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                proxy.accepted.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(&upstream[..]) else {
                    continue;
                };
                let proxy = proxy.clone();
                std::thread::spawn(move || proxy.pass(client, server));
            }
        });
        addr
    }

    /// Passes bytes both ways; counts the requests the relay starts on this connection by the
    /// reads that begin with a method (the relay writes each request's head in one write).
    fn pass(self, mut client: TcpStream, server: TcpStream) {
        let (mut to_server, mut from_server) = (server.try_clone().unwrap(), server);
        let mut to_client = client.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from_server, &mut to_client);
            let _ = to_client.shutdown(Shutdown::Both);
        });
        let mut requests = 0;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let starts_request = [&b"POST "[..], b"GET "]
                .iter()
                .any(|method| buf[..n].starts_with(method));
            if starts_request {
                requests += 1;
                if requests > 1 && self.close_next_reused.swap(false, Ordering::SeqCst) {
                    self.closed.fetch_add(1, Ordering::SeqCst);
                    break;
                }
            }
            if to_server.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = client.shutdown(Shutdown::Both);
        let _ = to_server.shutdown(Shutdown::Both);
    }
}

async fn spawn_behind(proxy: &ClosingProxy) -> TestApp {
    spawn_app_with(|s| {
        let mock = s
            .upstream
            .base_url
            .socket_addrs(|| None)
            .expect("the mock's address");
        let front = proxy.start(mock);
        let url = &mut s.upstream.base_url;
        url.set_ip_host(front.ip()).expect("an http URL");
        url.set_port(Some(front.port())).expect("an http URL");
    })
    .await
}

#[actix_web::test]
async fn a_request_on_a_connection_the_upstream_closed_goes_again_on_a_new_one() {
    let proxy = ClosingProxy::default();
    let app = spawn_behind(&proxy).await;
    for stream in [false, true] {
        let mut first = app
            .responses()
            .send_json(&body("gpt-5.5", "hi", stream))
            .await
            .unwrap();
        assert_eq!(first.status(), 200);
        read_all(&mut first).await;
        let accepted = proxy.accepted.load(Ordering::SeqCst);

        proxy.close_next_reused.store(true, Ordering::SeqCst);
        let mut second = app
            .responses()
            .send_json(&body("gpt-5.5", "again", stream))
            .await
            .unwrap();
        let answer = read_all(&mut second).await;
        assert_eq!(second.status(), 200, "{}", String::from_utf8_lossy(&answer));
        assert!(
            !proxy.close_next_reused.load(Ordering::SeqCst),
            "the second request did not go on the kept connection"
        );
        assert!(
            proxy.accepted.load(Ordering::SeqCst) > accepted,
            "the request did not go again on a new connection"
        );
    }
    assert_eq!(proxy.closed.load(Ordering::SeqCst), 2);
    // The upstream got each request the proxy passed on once: the closed ones never reached it.
    let sent: Vec<_> = app
        .mock
        .state
        .responses_requests()
        .iter()
        .filter_map(|r| r.json())
        .collect();
    assert_eq!(sent.len(), 4);
    // Not the account's failure: no attempt failed.
    assert!(
        !app.logs().contains("upstream request failed"),
        "{}",
        app.logs()
    );
    app.stop().await;
}
