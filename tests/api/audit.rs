//! The audit trail of a running relay: a row for every data-plane request with who, what model,
//! which account and how it ended; a row for every admin act and refused admin call with its
//! actor; no secret and no content anywhere in the trail, its search, its export or its API;
//! pages behind a cursor; and retention that keeps `verify` green. A trail that cannot be written:
//! `audit_failure.rs`.

use std::path::{Path, PathBuf};

use codex_relay::audit::{append_now, ActorKind, Record};
use codex_relay::settings::Settings;
use codex_relay::store::admin_tokens::AdminScope;
use serde_json::{json, Value};

use crate::cli::{relay, run, stderr, stdout};
use crate::helpers::{
    admin_call, body, error_of, eventually, read_all, spawn_app, spawn_app_expiring,
    spawn_app_with, TestApp,
};
use crate::mock_upstream::TokenFailure;

/// The client's trace, which its row names.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

pub const PROMPT: &str = "PROMPT-CANARY-audit-4411 what is my password";

/// The folder of the app's store, where the audit file is (`audit.db` beside the store).
fn data_dir(settings: &Settings) -> PathBuf {
    settings.store.path.parent().unwrap().to_path_buf()
}

/// Rewrites row `seq` of the trail at `file` as someone with write access to the file would:
/// its segment's rows decompressed, the row's line edited, compressed again.
pub fn edit_row(file: &Path, seq: i64, edit: impl FnOnce(&str) -> String) {
    let conn = rusqlite::Connection::open(file).unwrap();
    let (first, packed): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT first_seq, lines FROM audit_segments WHERE first_seq <= ?1
             ORDER BY first_seq DESC LIMIT 1",
            [seq],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    let text = String::from_utf8(zstd::decode_all(&packed[..]).unwrap()).unwrap();
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let line = &mut lines[usize::try_from(seq - first).unwrap()];
    *line = edit(line);
    let packed = zstd::encode_all(lines.join("\n").as_bytes(), 1).unwrap();
    conn.execute(
        "UPDATE audit_segments SET lines = ?1 WHERE first_seq = ?2",
        rusqlite::params![packed, first],
    )
    .unwrap();
}

/// Every row `GET /admin/v1/audit` returns for `query`, following its cursor.
pub async fn audit_rows(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/admin/v1/audit?limit=3&{query}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let (status, page) = admin_call(app, "GET", &path, token, None).await;
        assert_eq!(status, 200, "{page}");
        rows.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return rows,
        }
    }
}

/// Waits until the trail holds at least `count` rows matching `query`, and returns them.
pub async fn rows_when(app: &TestApp, token: &str, query: &str, count: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let found = audit_rows(app, token, query).await;
        if found.len() >= count {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} rows for {query}: {found:?}",
            found.len()
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The status of one short non-streaming request with the test key (its body read).
pub async fn ask(app: &TestApp) -> u16 {
    let mut response = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    let _ = response.body().await;
    response.status().as_u16()
}

/// The CLI on the app's data folder (its settings name the same store, hence the same trail).
fn cli(settings: &Settings) -> std::process::Command {
    relay(&data_dir(settings))
}

#[actix_web::test]
async fn each_request_is_recorded_with_who_what_model_which_account_and_how_it_ended() {
    let app = spawn_app().await;
    let admin = app.admin_token(AdminScope::Write).await;
    let (status, tenant) = admin_call(
        &app,
        "POST",
        "/admin/v1/tenants",
        &admin,
        Some(json!({"name": "team-audit"})),
    )
    .await;
    assert_eq!(status, 201, "{tenant}");
    let new_key = json!({"name": "audit-key", "tenant": "team-audit"});
    let (_, created) = admin_call(&app, "POST", "/admin/v1/keys", &admin, Some(new_key)).await;
    let key = created["key"].as_str().unwrap().to_owned();
    let key_id = created["id"].as_str().unwrap().to_owned();
    let known = eventually(5, || async {
        let response = app.get("/v1/models").bearer_auth(&key).send().await;
        response.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(known);

    let mut streamed = app
        .responses_as(&key)
        .insert_header(("user-agent", "codex_cli_rs/0.50.0 (Linux; x86_64)"))
        .insert_header(("x-request-id", "audit-stream-1"))
        .insert_header(("traceparent", TRACEPARENT))
        .send_json(&body("gpt-5.5", PROMPT, true))
        .await
        .unwrap();
    assert_eq!(streamed.status(), 200);
    read_all(&mut streamed).await;
    let mut unknown = app
        .responses_as(&key)
        .insert_header(("x-request-id", "audit-unknown-1"))
        .send_json(&body("no-such-model", PROMPT, false))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    error_of(&mut unknown).await;

    let rows = rows_when(&app, &admin, "request_id=audit-stream-1", 1).await;
    let row = &rows[0];
    assert_eq!(row["kind"], "request");
    assert_eq!(row["action"], "responses.create");
    assert_eq!(row["endpoint"], "POST /v1/responses");
    assert_eq!(row["tenant_id"], tenant["id"]);
    assert_eq!(row["key_id"], key_id.as_str());
    assert_eq!(row["key_name"], "audit-key");
    assert_eq!(row["client_name"], "codex_cli_rs");
    assert_eq!(row["client_version"], "0.50.0");
    assert_eq!(row["client_addr"], "127.0.0.1");
    assert_eq!(row["model_requested"], "gpt-5.5");
    assert_eq!(row["model_served"], "gpt-5.5");
    assert_eq!(row["account_id"], app.account_id.as_str());
    assert_eq!(row["accounts_tried"], json!([app.account_id]));
    assert_eq!(row["status"], 200);
    assert_eq!(row["stream"], true);
    assert_eq!(row["stream_outcome"], "completed");
    assert!(row["input_tokens"].as_u64().unwrap() > 0, "{row}");
    assert!(row["output_tokens"].as_u64().unwrap() > 0, "{row}");
    assert!(row["duration_ms"].is_u64(), "{row}");
    assert_eq!(row["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "{row}");
    assert!(row["seq"].as_i64().unwrap() > 0 && row["hash"].is_string());

    let rows = rows_when(&app, &admin, "request_id=audit-unknown-1", 1).await;
    assert_eq!(rows[0]["status"], 404);
    assert_eq!(rows[0]["error_code"], "model_not_found");
    assert_eq!(rows[0]["model_requested"], "no-such-model");
    // The filters: by key, by tenant, by status, by model.
    let by_key = rows_when(&app, &admin, &format!("key={key_id}"), 2).await;
    assert!(by_key.iter().all(|r| r["key_id"] == key_id.as_str()));
    let by_status = rows_when(&app, &admin, "status=404&action=responses.create", 1).await;
    assert_eq!(by_status.len(), 1);
    // The key's polls of /v1/models above are requests of the tenant too.
    let tenant_query = format!("tenant={}", tenant["id"].as_str().unwrap());
    let by_tenant = rows_when(&app, &admin, &tenant_query, 3).await;
    assert!(by_tenant.iter().all(|r| r["tenant_id"] == tenant["id"]));
    app.stop().await;
}

/// Each endpoint of the data plane names its own action: the two routes nearly every request
/// takes are known by their path, the others by the route the router matched, and a path no
/// route matches is a plain `request`.
#[actix_web::test]
async fn each_endpoint_of_the_data_plane_names_its_action() {
    let app = spawn_app().await;
    let admin = app.admin_token(AdminScope::Read).await;
    let calls = [
        ("GET", "/v1/models", 200, "models.list"),
        ("GET", "/v1/models/gpt-5.5", 200, "models.get"),
        ("GET", "/v1/no-such-endpoint", 404, "request"),
        ("POST", "/v1/responses", 200, "responses.create"),
    ];
    for (method, path, status, action) in calls {
        let request_id = format!("audit-action-{action}");
        let request = match method {
            "GET" => app.get(path),
            _ => app.responses(),
        };
        let request = request.insert_header(("x-request-id", request_id.as_str()));
        let mut response = match method {
            "GET" => request.send().await.unwrap(),
            _ => request
                .send_json(&body("gpt-5.5", "hi", false))
                .await
                .unwrap(),
        };
        let _ = response.body().await;
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        let rows = rows_when(&app, &admin, &format!("request_id={request_id}"), 1).await;
        assert_eq!(rows[0]["action"], action, "{method} {path}: {}", rows[0]);
        assert_eq!(rows[0]["endpoint"], format!("{method} {path}"));
        assert_eq!(rows[0]["status"], status);
    }
    app.stop().await;
}

#[actix_web::test]
async fn admin_acts_and_refused_admin_calls_are_recorded_with_their_actor() {
    let app = spawn_app().await;
    let writer = app.admin_token(AdminScope::Write).await;
    let reader = app.admin_token(AdminScope::Read).await;
    let disable = format!("/admin/v1/accounts/{}/disable", app.account_id);
    let (status, _) = admin_call(&app, "POST", &disable, &writer, None).await;
    assert_eq!(status, 200);
    let (status, key) = admin_call(
        &app,
        "POST",
        "/admin/v1/keys",
        &writer,
        Some(json!({"name": "made-by-api"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = admin_call(&app, "POST", &disable, &reader, None).await;
    assert_eq!(status, 403);
    let (status, _) = admin_call(
        &app,
        "DELETE",
        "/admin/v1/keys/x",
        "sk-relay-admin-nope",
        None,
    )
    .await;
    assert_eq!(status, 401);

    let acts = rows_when(&app, &writer, "action=account.disable", 1).await;
    let act = &acts[0];
    assert_eq!(act["kind"], "admin");
    assert_eq!(act["actor_kind"], "admin_token");
    assert_eq!(act["actor_name"], "tests");
    assert!(act["actor_id"].is_string(), "{act}");
    assert_eq!(act["target"], app.account_id.as_str());
    assert_eq!(act["result"], "ok");
    let created = rows_when(&app, &writer, "action=key.create", 1).await;
    assert_eq!(created[0]["target"], key["id"]);
    let refused = rows_when(&app, &writer, "action=admin.refused", 2).await;
    let forbidden = refused.iter().find(|r| r["status"] == 403).unwrap();
    assert_eq!(forbidden["actor_kind"], "admin_token");
    assert_eq!(forbidden["result"], "insufficient_scope");
    assert_eq!(forbidden["endpoint"], format!("POST {disable}"));
    let unknown = refused.iter().find(|r| r["status"] == 401).unwrap();
    assert_eq!(unknown["actor_kind"], "unauthenticated");
    assert!(unknown.get("actor_id").is_none(), "{unknown}");
    // Reads are not acts.
    let (_, reads) = admin_call(
        &app,
        "GET",
        "/admin/v1/audit?action=admin.read",
        &writer,
        None,
    )
    .await;
    assert_eq!(reads["data"], json!([]));
    app.stop().await;
}

#[actix_web::test]
async fn cli_acts_are_recorded_with_the_operating_system_user() {
    let app = spawn_app().await;
    let output = run(cli(&app.settings).args(["tenant", "create", "cli-team"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let output = run(cli(&app.settings).args(["key", "revoke", "no-such-key"]));
    assert!(!output.status.success());
    let output = run(cli(&app.settings).args(["audit", "search", "--json"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let rows: Vec<Value> = serde_json::from_str(&stdout(&output)).unwrap();
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    let tenant = rows
        .iter()
        .find(|r| r["action"] == "tenant.create")
        .unwrap();
    assert_eq!(tenant["actor_kind"], "cli");
    assert_eq!(tenant["actor_name"], user.as_str());
    assert_eq!(tenant["target"], "cli-team");
    assert_eq!(tenant["result"], "ok");
    let revoke = rows.iter().find(|r| r["action"] == "key.revoke").unwrap();
    assert_eq!(revoke["result"], "failed");
    app.stop().await;
}

#[actix_web::test]
async fn no_secret_or_content_is_in_the_trail_its_search_its_export_or_its_api() {
    let app = spawn_app().await;
    let admin = app.admin_token(AdminScope::Write).await;
    let mut secrets = app.seeded_secrets();
    secrets.extend([admin.clone(), PROMPT.to_owned()]);
    for stream in [true, false] {
        let mut response = app
            .responses()
            .send_json(&body("gpt-5.5", PROMPT, stream))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        read_all(&mut response).await;
    }
    let (_, created) = admin_call(
        &app,
        "POST",
        "/admin/v1/keys",
        &admin,
        Some(json!({"name": "k2"})),
    )
    .await;
    secrets.push(created["key"].as_str().unwrap().to_owned());
    let imported = app.auth_json.to_string();
    let mut reimport = app
        .admin("POST", "/admin/v1/accounts", &admin)
        .send_body(imported)
        .await
        .unwrap();
    assert!(reimport.status().is_success());
    let _ = reimport.body().await;
    let output = run(cli(&app.settings).args(["admin-token", "create", "--scope", "read"]));
    assert!(output.status.success(), "{}", stderr(&output));
    secrets.push(stdout(&output));

    // Every row is written within the flush interval (200 ms).
    actix_web::rt::time::sleep(std::time::Duration::from_millis(700)).await;
    let api = audit_rows(&app, &admin, "").await;
    assert!(api.len() >= 5, "{api:?}");
    let api_text = serde_json::to_string(&api).unwrap();
    let search = run(cli(&app.settings).args(["audit", "search", "--json"]));
    let export = run(cli(&app.settings).args(["audit", "export", "--since", "1h"]));
    assert!(export.status.success(), "{}", stderr(&export));
    assert_eq!(
        stdout(&export).lines().count(),
        api.len(),
        "the export has every row"
    );
    // The file holds the rows compressed (the export above has every one of them as text);
    // what it holds in the clear (the search index's values, the chain's head) is read here.
    let file = std::fs::read(data_dir(&app.settings).join("audit.db")).unwrap();
    let wal = std::fs::read(data_dir(&app.settings).join("audit.db-wal")).unwrap_or_default();
    let places = [
        ("the admin API", api_text.into_bytes()),
        ("audit search", search.stdout),
        ("audit export", export.stdout),
        ("the audit file", file),
        ("its WAL", wal),
    ];
    for (place, bytes) in &places {
        let text = String::from_utf8_lossy(bytes);
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{place} holds {secret}");
        }
    }
    app.stop().await;
}

#[actix_web::test]
async fn retention_prunes_old_rows_and_the_chain_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::defaults().unwrap();
    settings.store.path = dir.path().join("relay.db");
    let days_ago = |days: i64| chrono::Utc::now().timestamp_millis() - days * 86_400_000;
    for days in [30, 20, 10] {
        let mut old = Record::act(ActorKind::Cli, "key.create");
        old.at_ms = days_ago(days);
        append_now(&settings, old).unwrap();
    }
    let audit_file = dir.path().join("audit.db");
    let app = spawn_app_with(|s| {
        s.audit.path = audit_file.clone();
        s.audit.retention_days = 15;
    })
    .await;
    assert_eq!(ask(&app).await, 200);
    let admin = app.admin_token(AdminScope::Read).await;
    let pruned = eventually(5, || async {
        let rows = audit_rows(&app, &admin, "").await;
        let oldest = rows.iter().filter_map(|r| r["at_ms"].as_i64()).min();
        oldest.is_some_and(|at| at > days_ago(15)) && rows.iter().any(|r| r["kind"] == "request")
    })
    .await;
    assert!(pruned, "rows older than 15 days are still there");
    let output = run(relay(dir.path())
        .env("CODEX_RELAY__AUDIT__PATH", &audit_file)
        .args(["audit", "verify"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("from seq 3"),
        "{}",
        stdout(&output)
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_failed_refresh_and_a_lost_login_are_the_relays_own_acts_on_the_account() {
    let app = spawn_app_with(|s| {
        s.oauth.refresh_skew_secs = 7200;
        s.oauth.refresh_retry_initial_ms = 60_000;
    })
    .await;
    app.mock.state.push_token_failure(TokenFailure::Status(500));
    assert_eq!(ask(&app).await, 200);
    let admin = app.admin_token(AdminScope::Read).await;
    let failed = rows_when(&app, &admin, "action=account.refresh_failed", 1).await;
    assert_eq!(failed[0]["actor_kind"], "relay");
    assert_eq!(failed[0]["account_id"], app.account_id.as_str());
    assert!(
        failed[0]["result"].as_str().unwrap().contains("500"),
        "{}",
        failed[0]
    );
    app.stop().await;

    let app = spawn_app_expiring(-30, |_| {}).await;
    app.mock.state.push_token_failure(TokenFailure::Error {
        status: 401,
        code: "refresh_token_reused".into(),
    });
    assert_eq!(ask(&app).await, 503);
    let admin = app.admin_token(AdminScope::Read).await;
    let lost = rows_when(&app, &admin, "action=account.reauth_required", 1).await;
    assert_eq!(lost[0]["target"], app.account_id.as_str());
    let reason = lost[0]["result"].as_str().unwrap();
    assert!(reason.contains("refresh_token_reused"), "{reason}");
    app.stop().await;
}

#[actix_web::test]
async fn the_chain_is_verified_at_startup_and_a_break_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::defaults().unwrap();
    settings.store.path = dir.path().join("relay.db");
    for n in 0..3 {
        let mut act = Record::act(ActorKind::Cli, "tenant.create");
        act.target = Some(format!("team-{n}").into());
        append_now(&settings, act).unwrap();
    }
    let audit_file = dir.path().join("audit.db");
    let app = spawn_app_with(|s| s.audit.path = audit_file.clone()).await;
    let verified = eventually(10, || async {
        app.logs().contains("the audit trail verifies")
    })
    .await;
    assert!(verified, "no verification logged");
    app.stop().await;

    edit_row(&audit_file, 2, |line| line.replace("team-1", "team-7"));
    let app = spawn_app_with(|s| s.audit.path = audit_file.clone()).await;
    let reported = eventually(10, || async {
        let logs = app.logs();
        logs.contains("the audit trail was tampered with") && logs.contains("row 2 was edited")
    })
    .await;
    assert!(reported, "the break was not logged");
    app.stop().await;
}

#[actix_web::test]
async fn pages_follow_the_cursor_newest_first_without_a_gap_or_a_repeat() {
    let app = spawn_app().await;
    let admin = app.admin_token(AdminScope::Read).await;
    for _ in 0..7 {
        assert_eq!(ask(&app).await, 200);
    }
    let paged = rows_when(&app, &admin, "action=responses.create", 7).await;
    let path = "/admin/v1/audit?action=responses.create&limit=1000";
    let (_, page) = admin_call(&app, "GET", path, &admin, None).await;
    let whole = page["data"].as_array().unwrap().clone();
    assert_eq!(page["has_more"], false);
    let seqs = |rows: &[Value]| {
        rows.iter()
            .map(|r| r["seq"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs(&paged), seqs(&whole));
    assert!(seqs(&paged).windows(2).all(|w| w[0] > w[1]), "newest first");
    for bad in ["cursor=nope", "since=yesterday", "limit=0", "colour=red"] {
        let (status, error) =
            admin_call(&app, "GET", &format!("/admin/v1/audit?{bad}"), &admin, None).await;
        assert_eq!(status, 400, "{bad}: {error}");
    }
    app.stop().await;
}

#[actix_web::test]
async fn starting_stopping_and_reading_a_capture_are_acts_in_the_trail_from_the_api_and_the_cli() {
    let app = spawn_app_with(|s| s.audit.capture.enabled = true).await;
    let writer = app.admin_token(AdminScope::Write).await;
    let key_id = app.store.get_key("tests").unwrap().id;
    let (status, capture) = admin_call(
        &app,
        "POST",
        "/admin/v1/audit/captures",
        &writer,
        Some(json!({"key": key_id, "duration": "1h"})),
    )
    .await;
    assert_eq!(status, 201, "{capture}");
    let id = capture["id"].as_str().unwrap().to_owned();
    let records = format!("/admin/v1/audit/captures/{id}/records");
    let (status, _) = admin_call(&app, "GET", &records, &writer, None).await;
    assert_eq!(status, 200);
    let stop = format!("/admin/v1/audit/captures/{id}");
    let (status, _) = admin_call(&app, "DELETE", &stop, &writer, None).await;
    assert_eq!(status, 200);
    for action in ["capture.start", "capture.read", "capture.stop"] {
        let rows = rows_when(&app, &writer, &format!("action={action}"), 1).await;
        assert_eq!(rows[0]["actor_kind"], "admin_token", "{action}: {rows:?}");
        assert_eq!(rows[0]["result"], "ok", "{action}: {rows:?}");
    }
    // Listing captures is a plain read, not an act.
    let (status, _) = admin_call(&app, "GET", "/admin/v1/audit/captures", &writer, None).await;
    assert_eq!(status, 200);

    let output = run(cli(&app.settings).args(["audit", "capture", "show", &id]));
    assert!(output.status.success(), "{}", stderr(&output));
    let output = run(cli(&app.settings).args(["audit", "search", "--json"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let rows: Vec<Value> = serde_json::from_str(&stdout(&output)).unwrap();
    let read = rows
        .iter()
        .find(|r| r["action"] == "capture.read" && r["actor_kind"] == "cli")
        .unwrap_or_else(|| panic!("no CLI read in {rows:?}"));
    assert_eq!(read["target"], id.as_str());
    app.stop().await;
}
