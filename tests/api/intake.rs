//! Request bodies on both planes: decoded within their limit (a decompression bomb is a 413
//! that costs the relay no more than the limit), in the codings clients send (others are a
//! 415), arriving within `server.body_read_timeout_secs` (else 408) — and a call is admitted
//! before its body is read, so a stalled upload holds its key's concurrency slot and a place
//! under the global cap, not a free ride past them.

use std::time::Duration;

use codex_relay::domain::Limits;
use codex_relay::store::admin_tokens::AdminScope;
use codex_relay::store::{keys::reveal, NewKey};

use crate::helpers::{body, eventually, spawn_app_seeded, spawn_app_with, TestApp};
use crate::raw::{head, Stalled};

/// A zstd frame of `blocks` RLE blocks of 128 KiB each — 4 bytes apiece on the wire, so
/// 16 KB decode to 512 MiB — built by hand as an attacker would.
fn zstd_bomb(blocks: usize) -> Vec<u8> {
    // Magic number; a descriptor with no content size; a 128 KiB window.
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38];
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        let rle_block = last | (1 << 1) | ((128 * 1024) << 3);
        frame.extend_from_slice(&rle_block.to_le_bytes()[..3]);
        frame.push(b' ');
    }
    frame
}

/// The process's peak resident memory (KiB) since the last [`reset_peak_rss`].
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Starts measuring the peak afresh (Linux: writing 5 to `clear_refs` resets `VmHWM`).
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

async fn write_token(app: &TestApp) -> String {
    app.admin_token(AdminScope::Write).await
}

/// The relay runs in this test's process (nextest gives each test its own), so the process's
/// peak memory is the relay's: before the fix, actix-web inflated the whole 512 MiB.
#[actix_web::test]
async fn a_decompression_bomb_is_a_413_and_costs_no_more_than_the_limit() {
    let app = spawn_app_with(|s| s.server.max_body_bytes = 1 << 20).await;
    let token = write_token(&app).await;
    let bomb = zstd_bomb(4096);
    assert!(bomb.len() < 17 * 1024);
    reset_peak_rss();
    let before = peak_rss_kib();

    let sent = app.responses().insert_header(("content-encoding", "zstd"));
    let mut refused = sent.send_body(bomb.clone()).await.unwrap();
    assert_eq!(refused.status(), 413);
    let error = crate::helpers::error_of(&mut refused).await;
    assert_eq!(error["code"], "request_too_large");
    let admin = app.admin("POST", "/admin/v1/tenants", &token);
    let admin = admin.insert_header(("content-encoding", "zstd"));
    let mut refused = admin.send_body(bomb).await.unwrap();
    assert_eq!(refused.status(), 413);
    assert_eq!(
        crate::helpers::error_of(&mut refused).await["code"],
        "request_too_large"
    );

    // The limit (1 MiB), a 32 KiB output block and the frame's 128 KiB window, for each plane;
    // the rest of the margin is the test's own noise.
    let grown_mib = (peak_rss_kib() - before) / 1024;
    assert!(grown_mib < 32, "peak memory grew by {grown_mib} MiB");
    app.stop().await;
}

#[actix_web::test]
async fn codings_clients_do_not_send_are_a_415_and_corrupt_ones_a_400_on_both_planes() {
    let app = crate::helpers::spawn_app().await;
    let token = write_token(&app).await;
    let request = serde_json::to_vec(&body("gpt-5.5", "hi", false)).unwrap();
    let cases = [
        ("br", 415, "unsupported_content_encoding"),
        ("zstd", 400, "invalid_content_encoding"),
    ];
    for (encoding, status, code) in cases {
        let data = app
            .responses()
            .insert_header(("content-encoding", encoding));
        let mut answer = data.send_body(request.clone()).await.unwrap();
        assert_eq!(answer.status(), status, "{encoding}");
        assert_eq!(crate::helpers::error_of(&mut answer).await["code"], code);
        let admin = app.admin("POST", "/admin/v1/tenants", &token);
        let admin = admin.insert_header(("content-encoding", encoding));
        let mut answer = admin.send_body(r#"{"name":"t"}"#).await.unwrap();
        assert_eq!(answer.status(), status, "{encoding}");
        assert_eq!(crate::helpers::error_of(&mut answer).await["code"], code);
    }
    assert!(app.mock.state.responses_requests().is_empty());

    // The admin plane decodes what clients send, as the data plane does.
    let tenant = zstd::encode_all(&br#"{"name":"compressed"}"#[..], 3).unwrap();
    let admin = app.admin("POST", "/admin/v1/tenants", &token);
    let created = admin
        .insert_header(("content-encoding", "zstd"))
        .send_body(tenant);
    assert_eq!(created.await.unwrap().status(), 201);
    app.stop().await;
}

fn key_with(app: &TestApp, limits: Limits) -> String {
    let new = NewKey {
        name: "limited".to_owned(),
        limits,
        ..NewKey::default()
    };
    reveal(&app.store.create_key_with(&new).unwrap()).to_owned()
}

/// A `/v1/responses` upload from `key` that sends its head and 10 of its 1000 bytes.
fn stalled_upload(app: &TestApp, key: &str) -> Stalled {
    let headers = format!(
        "authorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n"
    );
    let request = head("POST", "/v1/responses", &headers) + r#"{"model":""#;
    Stalled::open(app.addr, request.as_bytes())
}

/// Whether requests from `key` come to be refused with `status` before their body is read (a
/// body that is not JSON would be a 400 after): the stalled upload has been admitted.
async fn admission_refuses(app: &TestApp, key: &str, status: u16) -> bool {
    eventually(5, || async {
        let answer = app.responses_as(key).send_body("{").await;
        answer.is_ok_and(|r| r.status() == status)
    })
    .await
}

/// Whether the relay knows `key` yet (it reads new keys every sync interval).
async fn known(app: &TestApp, key: &str) -> bool {
    eventually(5, || async {
        let response = app.get("/v1/models").bearer_auth(key).send().await;
        response.is_ok_and(|r| r.status() == 200)
    })
    .await
}

#[actix_web::test]
async fn a_stalled_upload_holds_its_keys_concurrency_slot_until_it_goes() {
    let app = spawn_app_seeded(|_| {}, |_| Vec::new()).await;
    let key = key_with(
        &app,
        Limits {
            max_concurrent: Some(1),
            ..Limits::default()
        },
    );
    assert!(known(&app, &key).await);
    let stalled = stalled_upload(&app, &key);
    assert!(admission_refuses(&app, &key, 429).await);
    let second = app
        .responses_as(&key)
        .send_json(&body("gpt-5.5", "hi", false));
    let mut second = actix_web::rt::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("refused at once, not left to wait")
        .unwrap();
    assert_eq!(second.status(), 429);
    let error = crate::helpers::error_of(&mut second).await;
    assert!(error["message"].as_str().unwrap().contains("concurrent"));
    assert!(app.mock.state.responses_requests().is_empty());

    drop(stalled);
    let served = eventually(5, || async {
        let answer = app
            .responses_as(&key)
            .send_json(&body("gpt-5.5", "hi", false));
        answer.await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(served, "the slot is given back when the upload goes");
    app.stop().await;
}

#[actix_web::test]
async fn stalled_uploads_count_against_the_global_in_flight_cap() {
    let app = spawn_app_with(|s| s.limits.max_in_flight = 1).await;
    let _stalled = stalled_upload(&app, &app.key);
    assert!(admission_refuses(&app, &app.key, 503).await);
    let shed = app.responses().send_json(&body("gpt-5.5", "hi", false));
    let mut shed = shed.await.unwrap();
    assert_eq!(shed.status(), 503);
    assert_eq!(
        crate::helpers::error_of(&mut shed).await["code"],
        "overloaded"
    );
    assert!(app.mock.state.responses_requests().is_empty());
    app.stop().await;
}

#[actix_web::test]
async fn a_body_that_stops_arriving_is_a_408_on_both_planes() {
    let app = spawn_app_with(|s| s.server.body_read_timeout_secs = 1).await;
    let token = write_token(&app).await;
    let started = std::time::Instant::now();
    let data = stalled_upload(&app, &app.key);
    let headers = format!("authorization: Bearer {token}\r\ncontent-length: 100\r\n");
    let admin = head("POST", "/admin/v1/tenants", &headers) + r#"{"name":"#;
    let admin = Stalled::open(app.admin_addr, admin.as_bytes());
    for stalled in [data, admin] {
        let answer = stalled.answer(Duration::from_secs(10)).await;
        let answer = answer.expect("an answer before the test gives up");
        assert_eq!(answer.status, 408);
        let error = answer.error();
        assert_eq!(error["code"], "request_timeout");
        assert_eq!(error["type"], "invalid_request_error");
    }
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(app.mock.state.responses_requests().is_empty());
    // The relay serves on.
    let served = app.responses().send_json(&body("gpt-5.5", "hi", false));
    assert_eq!(served.await.unwrap().status(), 200);
    app.stop().await;
}
