//! Stopping the real binary with SIGTERM: both listeners close at once, a stream in flight
//! finishes with its terminal event and the relay exits 0; a stream that outlasts
//! `server.shutdown_grace_secs` is cut when the grace runs out.

use std::net::TcpStream;
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::cli::{relay, run, stdout};
use crate::crash::{serve_with, Relay};
use crate::helpers::{body, client, eventually};
use crate::mock_upstream::{fake_auth_json, MockUpstream};

const TERMINAL_EVENT: &str = "event: response.completed";

/// `codex-relay serve` with one account of `mock` and the drain grace `grace_secs`; returns the
/// process, its address and an API key.
async fn serve_one_account(
    dir: &Path,
    mock: &MockUpstream,
    grace_secs: &str,
) -> (Relay, String, String) {
    let key = stdout(&run(relay(dir).args(["key", "create", "--name", "drain"])));
    let expires = chrono::Utc::now().timestamp() + 3600;
    let auth = fake_auth_json("acct-drain-1", "drain@example.com", "plus", expires);
    let path = dir.join("auth.json");
    std::fs::write(&path, auth.to_string()).unwrap();
    assert!(run(relay(dir).args(["account", "import"]).arg(&path))
        .status
        .success());
    let grace = [("CODEX_RELAY__SERVER__SHUTDOWN_GRACE_SECS", grace_secs)];
    let (child, addr, _) = serve_with(dir, mock, &grace).await;
    (child, addr, key)
}

/// A streaming call whose first bytes have arrived: the stream is in flight.
async fn stream_in_flight(addr: &str, key: &str) -> (awc::ClientResponse, Vec<u8>) {
    let mut response = client()
        .post(format!("http://{addr}/v1/responses"))
        .bearer_auth(key)
        .send_json(&body("gpt-5.5", "a slow answer", true))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first = response.next().await.unwrap().unwrap();
    (response, first.to_vec())
}

fn terminate(relay: &Relay) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(relay.0.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
}

/// The rest of a stream, after `read`: until it ends or is cut.
async fn rest_of(response: &mut awc::ClientResponse, mut read: Vec<u8>) -> String {
    while let Some(Ok(chunk)) = response.next().await {
        read.extend_from_slice(&chunk);
    }
    String::from_utf8_lossy(&read).into_owned()
}

/// How the relay exited, if it did within `secs`.
async fn exit_within(relay: &mut Relay, secs: u64) -> Option<ExitStatus> {
    let mut status = None;
    eventually(secs, || {
        status = status.or_else(|| relay.0.try_wait().unwrap());
        let exited = status.is_some();
        async move { exited }
    })
    .await;
    status
}

/// A relay (drain grace `grace_secs`) with a stream in flight whose events the mock sends
/// `event_delay` apart: what each test stops.
struct InFlight {
    mock: MockUpstream,
    relay: Relay,
    addr: String,
    response: awc::ClientResponse,
    read: Vec<u8>,
    _dir: tempfile::TempDir,
}

async fn in_flight(event_delay: Duration, grace_secs: &str) -> InFlight {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    mock.state.set_event_delay(event_delay);
    let dir = tempfile::tempdir().unwrap();
    let (relay, addr, key) = serve_one_account(dir.path(), &mock, grace_secs).await;
    let (response, read) = stream_in_flight(&addr, &key).await;
    InFlight {
        mock,
        relay,
        addr,
        response,
        read,
        _dir: dir,
    }
}

#[actix_web::test]
async fn sigterm_lets_a_stream_in_flight_finish_and_refuses_new_connections() {
    // The answer's fifteen events 200 ms apart: a stream of three seconds.
    let mut call = in_flight(Duration::from_millis(200), "20").await;

    terminate(&call.relay);
    let addr = call.addr.clone();
    let refused = eventually(2, || async { TcpStream::connect(&addr).is_err() }).await;
    assert!(refused, "the relay still accepts connections after SIGTERM");
    assert!(
        call.relay.0.try_wait().unwrap().is_none(),
        "the relay exited before its stream ended"
    );
    let streamed = rest_of(&mut call.response, call.read).await;
    assert!(
        streamed.contains(TERMINAL_EVENT),
        "the stream in flight was cut: {streamed}"
    );
    let status = exit_within(&mut call.relay, 20).await;
    assert!(status.is_some_and(|s| s.success()), "exit: {status:?}");
    call.mock.stop().await;
}

#[actix_web::test]
async fn a_stream_that_outlasts_the_grace_is_cut_when_it_runs_out() {
    // Fifteen events a second apart: far longer than the grace.
    let mut call = in_flight(Duration::from_secs(1), "1").await;

    let signalled = Instant::now();
    terminate(&call.relay);
    let streamed = rest_of(&mut call.response, call.read).await;
    assert!(!streamed.contains(TERMINAL_EVENT), "{streamed}");
    // The grace, actix-server's check interval (1 s) and the usage write, well short of the
    // stream's fifteen seconds.
    let status = exit_within(&mut call.relay, 8).await;
    assert!(status.is_some_and(|s| s.success()), "exit: {status:?}");
    assert!(signalled.elapsed() < Duration::from_secs(8));
    call.mock.stop().await;
}
