//! Content capture (`audit.capture`): off by default; when on, an operator's capture covers one
//! key or tenant for a limited time, its records are sealed on disk, reading them needs the write
//! scope, prompts never reach a log line, and every act is logged with its actor.

use std::path::{Path, PathBuf};
use std::time::Duration;

use codex_relay::store::admin_tokens::AdminScope;
use codex_relay::store::keys::{reveal, NewKey};
use codex_relay::store::NewTenant;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::helpers::{
    admin_call, body, eventually, read_all, spawn_app_seeded, spawn_app_with, TestApp,
};

fn capture_on(settings: &mut codex_relay::settings::Settings) {
    settings.audit.capture.enabled = true;
}

fn capture_file(app: &TestApp) -> PathBuf {
    app.settings.store.path.with_file_name("capture.db")
}

/// The id of the test's own key (named `tests` by `spawn_app`).
fn test_key_id(app: &TestApp) -> String {
    app.store.get_key("tests").unwrap().id
}

/// Sends one call with `key` and the prompt `text`; returns its relay request id.
async fn call(app: &TestApp, key: &str, text: &str, stream: bool) -> String {
    let mut response = app
        .responses_as(key)
        .send_json(&body("gpt-5.5", text, stream))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    read_all(&mut response).await;
    let id = response.headers().get("x-relay-request-id").unwrap();
    id.to_str().unwrap().to_owned()
}

async fn start(app: &TestApp, token: &str, request: Value) -> (u16, Value) {
    admin_call(
        app,
        "POST",
        "/admin/v1/audit/captures",
        token,
        Some(request),
    )
    .await
}

/// Waits until capture `id` lists `n` records.
async fn records_reach(app: &TestApp, token: &str, id: &str, n: i64) -> bool {
    eventually(5, || async {
        let (_, list) = admin_call(app, "GET", "/admin/v1/audit/captures", token, None).await;
        let rule = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .cloned();
        rule.is_some_and(|r| r["records"] == n)
    })
    .await
}

/// Every byte of the capture file and its write-ahead log.
fn raw_bytes(db: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(db).unwrap();
    for suffix in ["-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        bytes.extend(std::fs::read(PathBuf::from(name)).unwrap_or_default());
    }
    bytes
}

/// Asserts that none of `prompts` is in the relay's log lines.
fn no_prompt_in(logs: &str, prompts: &[&str]) {
    for prompt in prompts {
        assert!(!logs.contains(prompt), "{prompt} in the logs");
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[actix_web::test]
async fn capture_is_off_by_default_nothing_is_recorded_and_starting_is_refused() {
    let app = spawn_app_with(|_| {}).await;
    let write = app.admin_token(AdminScope::Write).await;
    let (status, error) = start(&app, &write, json!({"key": "tests", "duration": "1h"})).await;
    assert_eq!(status, 403, "{error}");
    assert_eq!(error["error"]["code"], "capture_disabled");
    assert_eq!(error["error"]["type"], "permission_error");
    call(&app, &app.key, "a prompt nobody captures", false).await;
    assert!(
        !capture_file(&app).exists(),
        "no capture file while capture is off"
    );
    let (status, list) = admin_call(&app, "GET", "/admin/v1/audit/captures", &write, None).await;
    assert_eq!((status, list["data"].as_array().unwrap().len()), (200, 0));
    assert!(app.logs().contains("\"action\":\"capture.start\""));
    assert!(app.logs().contains("\"result\":\"capture_disabled\""));
    app.stop().await;
}

#[actix_web::test]
async fn a_capture_on_a_key_records_its_calls_sealed_and_no_other_keys() {
    let app = spawn_app_seeded(capture_on, |store| {
        vec![reveal(&store.create_key("other").unwrap()).to_owned()]
    })
    .await;
    let write = app.admin_token(AdminScope::Write).await;
    let read = app.admin_token(AdminScope::Read).await;
    let asked = json!({"key": "tests", "duration_secs": 600, "reason": "incident 42"});
    let (status, rule) = start(&app, &write, asked).await;
    assert_eq!(status, 201, "{rule}");
    assert_eq!(
        (rule["scope"].as_str(), rule["status"].as_str()),
        (Some("key"), Some("active"))
    );
    assert_eq!(rule["subject"], test_key_id(&app));
    let id = rule["id"].as_str().unwrap().to_owned();

    let json_id = call(&app, &app.key, "CAPTURED-PROMPT-JSON-7731", false).await;
    call(&app, &app.key, "CAPTURED-PROMPT-STREAM-5521", true).await;
    call(&app, &app.seeded[0], "UNCAPTURED-OTHER-KEY-9914", false).await;
    assert!(
        records_reach(&app, &write, &id, 2).await,
        "both calls of the key recorded"
    );

    // Sealed on disk: no prompt in the file or its write-ahead log.
    let raw = raw_bytes(&capture_file(&app));
    for prompt in [
        "CAPTURED-PROMPT-JSON-7731",
        "CAPTURED-PROMPT-STREAM-5521",
        "response.completed",
    ] {
        assert!(
            !contains(&raw, prompt),
            "{prompt} in the capture file's bytes"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(capture_file(&app))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Reading needs the write scope.
    let path = format!("/admin/v1/audit/captures/{id}/records");
    let (status, refused) = admin_call(&app, "GET", &path, &read, None).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("insufficient_scope"))
    );
    let (status, records) = admin_call(&app, "GET", &path, &write, None).await;
    assert_eq!(status, 200, "{records}");
    let records = records["data"].as_array().unwrap().clone();
    assert_eq!(records.len(), 2);
    let text = serde_json::to_string(&records).unwrap();
    assert!(
        !text.contains("UNCAPTURED-OTHER-KEY-9914"),
        "another key's call was captured"
    );
    let (plain, streamed) = (&records[0], &records[1]);
    assert_eq!(
        plain["request"]["input"][0]["content"][0]["text"],
        "CAPTURED-PROMPT-JSON-7731"
    );
    assert_eq!(
        (plain["stream"].as_bool(), plain["status"].as_u64()),
        (Some(false), Some(200))
    );
    assert_eq!(plain["response"]["object"], "response");
    assert_eq!(streamed["stream"], true);
    assert!(streamed["response"]
        .as_str()
        .unwrap()
        .contains("response.completed"));
    assert!(streamed["request"]
        .to_string()
        .contains("CAPTURED-PROMPT-STREAM-5521"));
    // The call's audit row names the capture that recorded it, so the record is found from the
    // row; the other key's call names none.
    let rows = crate::audit::rows_when(&app, &read, "action=responses.create", 3).await;
    let captured = rows.iter().filter(|row| row["capture_id"] == id.as_str());
    assert_eq!(captured.count(), 2, "{rows:?}");
    let json_row = rows
        .iter()
        .find(|row| row["request_id"] == json_id.as_str());
    assert_eq!(json_row.unwrap()["capture_id"], id.as_str());
    let other = format!("key={}", app.store.get_key("other").unwrap().id);
    let other = crate::audit::audit_rows(&app, &read, &other).await;
    assert_eq!(other.len(), 1);
    assert!(other[0].get("capture_id").is_none(), "{other:?}");
    let one = format!("{path}/{json_id}");
    let (status, single) = admin_call(&app, "GET", &one, &write, None).await;
    assert_eq!(
        (status, single["request_id"].as_str()),
        (200, Some(json_id.as_str()))
    );

    // Every act is logged with its actor; no prompt is in any log line.
    let logs = app.logs();
    no_prompt_in(
        &logs,
        &[
            "CAPTURED-PROMPT-JSON-7731",
            "CAPTURED-PROMPT-STREAM-5521",
            "UNCAPTURED-OTHER-KEY-9914",
        ],
    );
    let acts: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["msg"] == "audit act")
        .collect();
    let act = |action: &str, result: &str| {
        acts.iter().any(|a| {
            a["action"] == action
                && a["result"] == result
                && a["actor"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("admin_token:"))
        })
    };
    assert!(act("capture.start", "ok"), "{acts:?}");
    assert!(act("capture.read", "ok"), "{acts:?}");
    assert!(act("capture.read", "insufficient_scope"), "{acts:?}");

    let mut scraped = app.admin("GET", "/metrics", &read).send().await.unwrap();
    let scraped = String::from_utf8(read_all(&mut scraped).await.to_vec()).unwrap();
    assert!(
        scraped.contains("codex_relay_capture_records_total{result=\"written\"} 2"),
        "{scraped}"
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_capture_on_a_tenant_covers_its_keys_only_and_stops_when_asked() {
    let app = spawn_app_seeded(capture_on, |store| {
        let tenant = NewTenant {
            name: "team-a".into(),
            ..NewTenant::default()
        };
        store.create_tenant(&tenant).unwrap();
        let member = NewKey {
            name: "member".into(),
            tenant: Some("team-a".into()),
            ..NewKey::default()
        };
        vec![reveal(&store.create_key_with(&member).unwrap()).to_owned()]
    })
    .await;
    let write = app.admin_token(AdminScope::Write).await;
    let (status, rule) = start(&app, &write, json!({"tenant": "team-a", "duration": "10m"})).await;
    assert_eq!(status, 201, "{rule}");
    let id = rule["id"].as_str().unwrap().to_owned();
    call(&app, &app.seeded[0], "TENANT-PROMPT-1", false).await;
    call(&app, &app.key, "NO-TENANT-PROMPT-2", false).await;
    assert!(records_reach(&app, &write, &id, 1).await);

    let (status, stopped) = admin_call(
        &app,
        "DELETE",
        &format!("/admin/v1/audit/captures/{id}"),
        &write,
        None,
    )
    .await;
    assert_eq!(
        (status, stopped["status"].as_str()),
        (200, Some("stopped")),
        "{stopped}"
    );
    call(&app, &app.seeded[0], "TENANT-PROMPT-AFTER-STOP", false).await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let path = format!("/admin/v1/audit/captures/{id}/records");
    let (_, records) = admin_call(&app, "GET", &path, &write, None).await;
    let text = records.to_string();
    assert!(text.contains("TENANT-PROMPT-1"));
    assert!(
        !text.contains("NO-TENANT-PROMPT-2"),
        "a key outside the tenant was captured"
    );
    assert!(
        !text.contains("TENANT-PROMPT-AFTER-STOP"),
        "captured after its stop"
    );
    assert!(app.logs().contains("\"action\":\"capture.stop\""));
    app.stop().await;
}

#[actix_web::test]
async fn a_capture_ends_by_itself_at_its_end_time() {
    // No re-read of the captures in this test's time: the call after the end is left out by the
    // end time alone.
    let slow_sync = |s: &mut codex_relay::settings::Settings| {
        capture_on(s);
        s.store.sync_interval_ms = 60_000;
    };
    let app = spawn_app_seeded(slow_sync, |store| {
        let created = store
            .create_admin_token("capture", AdminScope::Write)
            .unwrap();
        vec![created.token.expose_secret().to_owned()]
    })
    .await;
    let write = app.seeded[0].clone();
    let (status, rule) = start(&app, &write, json!({"key": "tests", "duration_secs": 2})).await;
    assert_eq!(status, 201, "{rule}");
    let id = rule["id"].as_str().unwrap().to_owned();
    call(&app, &app.key, "BEFORE-THE-END", false).await;
    assert!(records_reach(&app, &write, &id, 1).await);
    actix_web::rt::time::sleep(Duration::from_millis(2100)).await;
    call(&app, &app.key, "AFTER-THE-END", false).await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let (_, list) = admin_call(&app, "GET", "/admin/v1/audit/captures", &write, None).await;
    assert_eq!(list["data"][0]["status"], "ended");
    assert_eq!(
        list["data"][0]["records"], 1,
        "a call after the end time was captured"
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_capture_is_refused_without_an_end_beyond_its_cap_for_an_unknown_key_or_a_bad_reason() {
    let app = spawn_app_with(|s| {
        capture_on(s);
        s.audit.capture.max_duration_mins = 60;
    })
    .await;
    let write = app.admin_token(AdminScope::Write).await;
    let cases = [
        (json!({"key": "tests"}), "duration"),
        (json!({"key": "tests", "duration": "2h"}), "duration"),
        (json!({"key": "tests", "duration": "soon"}), "duration"),
        (json!({"key": "nobody", "duration": "1h"}), "key"),
        (json!({"duration": "1h"}), "key"),
        (
            json!({"key": "tests", "tenant": "t", "duration": "1h"}),
            "key",
        ),
        (
            json!({"key": "tests", "duration": "1h", "reason": "x".repeat(501)}),
            "reason",
        ),
        (
            json!({"key": "tests", "duration": "1h", "reason": "a\u{1b}[2Jb"}),
            "reason",
        ),
    ];
    for (asked, param) in cases {
        let (status, error) = start(&app, &write, asked.clone()).await;
        assert_eq!(status, 400, "{asked}: {error}");
        assert_eq!(error["error"]["param"], param, "{asked}: {error}");
    }
    app.stop().await;
}

#[actix_web::test]
async fn websocket_turns_of_a_captured_key_are_recorded_each_with_its_answer_or_its_refusal() {
    use crate::mock_upstream::Scripted;
    use crate::websocket::{connect, create, turn, types};
    let app = spawn_app_with(capture_on).await;
    let write = app.admin_token(AdminScope::Write).await;
    let (status, rule) = start(&app, &write, json!({"key": "tests", "duration": "10m"})).await;
    assert_eq!(status, 201, "{rule}");
    let id = rule["id"].as_str().unwrap().to_owned();
    let mut socket = connect(&app).await;
    let answered = turn(&mut socket, &create("CAPTURED-WS-TURN-4410")).await;
    assert_eq!(types(&answered).last(), Some(&"response.completed"));
    // The backend refuses the next turn: it is refused after the upstream was called.
    app.mock.state.push_scripted(Scripted::Status {
        status: 400,
        body: r#"{"error":{"type":"invalid_request_error","message":"no"}}"#.into(),
        headers: Vec::new(),
    });
    let refused = turn(&mut socket, &create("CAPTURED-WS-REFUSED-8812")).await;
    assert_eq!(types(&refused), ["error"], "{refused:?}");
    let refused_status = refused[0]["status"].as_u64().unwrap();
    // And one refused by the relay itself, before any upstream call.
    let mut unknown = create("CAPTURED-WS-UNKNOWN-MODEL-3307");
    unknown["model"] = json!("no-such-model");
    let not_found = turn(&mut socket, &unknown).await;
    assert_eq!(not_found[0]["status"], 404, "{not_found:?}");
    assert!(
        records_reach(&app, &write, &id, 3).await,
        "every turn recorded"
    );
    let path = format!("/admin/v1/audit/captures/{id}/records");
    let (status, records) = admin_call(&app, "GET", &path, &write, None).await;
    assert_eq!(status, 200, "{records}");
    let records = records["data"].as_array().unwrap();
    let (first, second) = (&records[0], &records[1]);
    assert_eq!(first["request"]["type"], "response.create");
    assert!(first["request"]
        .to_string()
        .contains("CAPTURED-WS-TURN-4410"));
    assert_eq!(
        (first["stream"].as_bool(), first["status"].as_u64()),
        (Some(true), Some(200))
    );
    assert!(first["response"]
        .as_str()
        .unwrap()
        .contains("response.completed"));
    assert!(second["request"]
        .to_string()
        .contains("CAPTURED-WS-REFUSED-8812"));
    assert_eq!(second["status"].as_u64(), Some(refused_status), "{second}");
    assert!(refused_status >= 400);
    assert!(records[2]["request"]
        .to_string()
        .contains("CAPTURED-WS-UNKNOWN-MODEL-3307"));
    assert_eq!(records[2]["status"], 404, "{}", records[2]);
    no_prompt_in(
        &app.logs(),
        &[
            "CAPTURED-WS-TURN-4410",
            "CAPTURED-WS-REFUSED-8812",
            "CAPTURED-WS-UNKNOWN-MODEL-3307",
        ],
    );
    app.stop().await;
}
