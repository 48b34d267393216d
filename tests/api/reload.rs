//! Reloading the settings of a running relay. The real binary re-reads its file on SIGHUP: a new
//! limit and a new alias apply to the next request, a setting that needs a restart is named as
//! such, and an invalid file changes nothing. `POST /admin/v1/reload` does the same in process,
//! answering which settings were applied and which need a restart (a listen address), behind the
//! write scope.

use std::path::Path;

use codex_relay::settings::SettingsSource;
use codex_relay::store::admin_tokens::AdminScope;
use serde_json::{json, Value};

use crate::cli::{relay, run, stdout, write_auth};
use crate::crash::{logged, serve_with};
use crate::helpers::{admin_call, body, client, eventually, spawn_app_with, TestApp};
use crate::mock_upstream::MockUpstream;

/// A non-streaming call for `model` with `key`: its status.
async fn ask(addr: &str, key: &str, model: &str) -> u16 {
    let mut response = client()
        .post(format!("http://{addr}/v1/responses"))
        .bearer_auth(key)
        .send_json(&body(model, "hi", false))
        .await
        .unwrap();
    let _ = response.body().await;
    response.status().as_u16()
}

fn hang_up(pid: u32) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
}

const ALIAS_AND_ONE_A_MINUTE: &str =
    "[limits]\ndefault_key_rpm = 1\n[models.aliases]\ncodex = \"gpt-5.5\"\n[server]\nworkers = 3\n";

#[actix_web::test]
async fn sighup_applies_a_new_limit_and_alias_and_an_invalid_file_changes_nothing() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay.toml");
    std::fs::write(&file, "[limits]\ndefault_key_rpm = 600\n").unwrap();
    let key = stdout(&run(
        relay(dir.path()).args(["key", "create", "--name", "a"])
    ));
    let (auth, _) = write_auth(dir.path(), "auth.json", "acct-reload-1", "r@example.com");
    assert!(
        run(relay(dir.path()).args(["account", "import"]).arg(&auth))
            .status
            .success()
    );
    let config = file.display().to_string();
    let (served, addr, logs) = serve_with(
        dir.path(),
        &mock,
        &[("CODEX_RELAY_CONFIG", config.as_str())],
    )
    .await;
    assert_eq!(ask(&addr, &key, "codex").await, 404, "no alias yet");
    assert_eq!(ask(&addr, &key, "gpt-5.5").await, 200);

    std::fs::write(&file, ALIAS_AND_ONE_A_MINUTE).unwrap();
    hang_up(served.0.id());
    let reloaded = eventually(10, || async { logged(&logs, "settings reloaded") }).await;
    assert!(reloaded, "no reload logged");
    assert!(logged(&logs, r#""needs_restart":"server.workers""#));
    assert!(logged(
        &logs,
        r#""applied":"limits.default_key_rpm,models.aliases""#
    ));
    assert_eq!(ask(&addr, &key, "codex").await, 200, "the alias resolves");
    let seen = mock.state.responses_requests().pop().unwrap();
    assert_eq!(seen.json().unwrap()["model"], "gpt-5.5");
    assert_eq!(ask(&addr, &key, "codex").await, 429, "one a minute now");

    std::fs::write(
        &file,
        "[limits]\ndefault_key_rpm = 600\nmax_in_flight = 0\n",
    )
    .unwrap();
    hang_up(served.0.id());
    let refused = eventually(10, || async { logged(&logs, "settings reload refused") }).await;
    assert!(refused, "no refusal logged");
    assert!(logged(&logs, "limits.max_in_flight"));
    assert_eq!(ask(&addr, &key, "codex").await, 429, "the old limit stays");
    drop(served);
    mock.stop().await;
}

/// The file that gives `app` the settings it runs with, followed by `extra`.
pub fn write_settings(path: &Path, app: &TestApp, extra: &str) {
    let s = &app.settings;
    let text = format!(
        "[server]\nlisten = \"{}\"\nworkers = {}\n[admin]\nlisten = \"{}\"\n\
         [store]\npath = {:?}\nsync_interval_ms = {}\n[upstream]\nbase_url = \"{}\"\n\
         [oauth]\nissuer = \"{}\"\n{extra}",
        s.server.listen,
        s.server.workers,
        s.admin.listen,
        s.store.path.display().to_string(),
        s.store.sync_interval_ms,
        s.upstream.base_url,
        s.oauth.issuer,
    );
    std::fs::write(path, text).unwrap();
}

#[actix_web::test]
async fn the_admin_api_reloads_and_says_what_applied_and_what_needs_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay.toml");
    let source = SettingsSource::file(&file);
    let app = spawn_app_with(|s| s.source = source).await;
    let write = app.admin_token(AdminScope::Write).await;
    let read = app.admin_token(AdminScope::Read).await;
    write_settings(&file, &app, "[models.aliases]\ncodex = \"gpt-5.5\"\n");

    let (status, answer) = admin_call(&app, "POST", "/admin/v1/reload", &read, None).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (403, &Value::from("insufficient_scope")),
        "{answer}"
    );
    let (status, _) = admin_call(&app, "GET", "/admin/v1/models", &read, None).await;
    assert_eq!(status, 200);

    let (status, answer) = admin_call(&app, "POST", "/admin/v1/reload", &write, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["applied"], json!(["models.aliases"]));
    assert_eq!(answer["needs_restart"], json!([]));
    assert_eq!(ask(&app.addr.to_string(), &app.key, "codex").await, 200);

    let moved = "[models.aliases]\ncodex = \"gpt-5.5\"\n[limits]\nmax_in_flight = 1\n";
    write_settings(&file, &app, moved);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace(
            "[admin]\nlisten = \"127.0.0.1:0\"",
            "[admin]\nlisten = \"127.0.0.1:1\"",
        ),
    )
    .unwrap();
    let (status, answer) = admin_call(&app, "POST", "/admin/v1/reload", &write, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["applied"], json!(["limits.max_in_flight"]));
    assert_eq!(answer["needs_restart"], json!(["admin.listen"]));
    assert!(app
        .logs()
        .contains("keep their old value until the relay restarts"));

    std::fs::write(&file, "[routing]\nstrategy = \"random\"\n").unwrap();
    let (status, answer) = admin_call(&app, "POST", "/admin/v1/reload", &write, None).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_settings");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("random") && message.contains("nothing changed"),
        "{message}"
    );
    let (_, models) = admin_call(&app, "GET", "/admin/v1/models", &read, None).await;
    assert_eq!(
        models["aliases"]["codex"], "gpt-5.5",
        "the old settings stay"
    );
    assert_eq!(ask(&app.addr.to_string(), &app.key, "codex").await, 200);
    app.stop().await;
}
