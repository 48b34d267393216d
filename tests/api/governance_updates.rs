//! Changing tenants and keys after creation — `PATCH` on the admin plane and `tenant update` /
//! `key update` on the command line — validated like creation and applied by the running relay
//! within its sync interval, without re-issuing the key.

use codex_relay::store::admin_tokens::AdminScope;
use serde_json::{json, Value};

use crate::cli::{relay, run, stderr, stdout};
use crate::helpers::{body, eventually, spawn_app, TestApp};

async fn patch(app: &TestApp, path: &str, token: &str, change: Value) -> (u16, Value) {
    let mut response = app
        .admin("PATCH", path, token)
        .send_json(&change)
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().limit(1 << 20).await.unwrap())
}

async fn rate_header(app: &TestApp, key: &str) -> Option<String> {
    let mut response = app
        .responses_as(key)
        .send_json(&body("gpt-5.5", "hi", false))
        .await
        .unwrap();
    response.body().await.unwrap();
    let limit = response.headers().get("x-ratelimit-limit-requests")?;
    Some(limit.to_str().unwrap().to_owned())
}

#[actix_web::test]
async fn a_key_and_a_tenant_are_changed_over_the_admin_api_and_take_effect() {
    let app = spawn_app().await;
    let read = app.admin_token(AdminScope::Read).await;
    let write = app.admin_token(AdminScope::Write).await;
    let tenant = json!({"name": "team"});
    assert_eq!(
        app.admin("POST", "/admin/v1/tenants", &write)
            .send_json(&tenant)
            .await
            .unwrap()
            .status(),
        201
    );
    let mut created = app
        .admin("POST", "/admin/v1/keys", &write)
        .send_json(&json!({"name": "ci", "tenant": "team", "rpm": 30}))
        .await
        .unwrap();
    let key: Value = created.json().await.unwrap();
    let (id, text) = (key["id"].as_str().unwrap(), key["key"].as_str().unwrap());
    let path = format!("/admin/v1/keys/{id}");
    assert!(
        eventually(5, || async {
            rate_header(&app, text).await.as_deref() == Some("30")
        })
        .await
    );

    let (status, error) = patch(&app, &path, &read, json!({"rpm": 50})).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (403, Some("insufficient_scope"))
    );
    let (status, error) = patch(&app, &path, &write, json!({"rpm": 0})).await;
    assert_eq!(
        (status, error["error"]["param"].as_str()),
        (400, Some("rpm"))
    );
    let (status, error) = patch(
        &app,
        &path,
        &write,
        json!({"expires": "2000-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(
        (status, error["error"]["param"].as_str()),
        (400, Some("expires"))
    );
    let (status, error) = patch(&app, &path, &write, json!({"name": "renamed"})).await;
    assert_eq!(status, 400, "{error}");
    let (status, error) = patch(&app, "/admin/v1/keys/nope", &write, json!({"rpm": 5})).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    let (status, view) = patch(
        &app,
        &path,
        &write,
        json!({"rpm": 50, "models": ["gpt-5.4"]}),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["limits"]["rpm"], 50);
    assert_eq!(view["models"], json!(["gpt-5.4"]));
    assert!(view.get("key").is_none(), "the key is never shown again");
    let refused = eventually(5, || async {
        let response = app
            .responses_as(text)
            .send_json(&body("gpt-5.5", "hi", false))
            .await
            .unwrap();
        response.status() == 403 || response.status() == 404
    })
    .await;
    assert!(refused, "the new allow-list applies to the running relay");
    let (status, _) = patch(&app, &path, &write, json!({"models": null})).await;
    assert_eq!(status, 200);
    assert!(
        eventually(5, || async {
            rate_header(&app, text).await.as_deref() == Some("50")
        })
        .await
    );

    // The tenant's rate, tighter, becomes the one reported.
    let (status, view) = patch(&app, "/admin/v1/tenants/team", &write, json!({"rpm": 20})).await;
    assert_eq!((status, view["limits"]["rpm"].as_u64()), (200, Some(20)));
    assert!(
        eventually(5, || async {
            rate_header(&app, text).await.as_deref() == Some("20")
        })
        .await
    );
    let (status, error) = patch(&app, "/admin/v1/tenants/team", &write, json!({})).await;
    assert_eq!(
        (status, error["error"]["param"].as_str()),
        (400, Some("update"))
    );
    app.stop().await;
}

#[test]
fn tenants_and_keys_are_changed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let ok = |args: &[&str]| {
        let output = run(relay(dir.path()).args(args));
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        stdout(&output)
    };
    ok(&["tenant", "create", "team", "--rpm", "60"]);
    let key_id = {
        let listed = ok(&[
            "key", "create", "--name", "ci", "--tenant", "team", "--rpm", "10", "--burst", "5",
        ]);
        assert!(listed.starts_with("sk-relay-"));
        let keys: Value = serde_json::from_str(&ok(&["key", "list", "--json"])).unwrap();
        keys[0]["id"].as_str().unwrap().to_owned()
    };
    let printed = ok(&[
        "key",
        "update",
        "ci",
        "--rpm",
        "20",
        "--models",
        "gpt-5.5",
        "--expires",
        "2099-01-01T00:00:00Z",
    ]);
    assert_eq!(
        printed, key_id,
        "stdout is the key's id alone, never the key"
    );
    ok(&[
        "tenant",
        "update",
        "team",
        "--clear",
        "rpm",
        "--daily-tokens",
        "500",
        "--hide-models",
        "gpt-5.2",
    ]);

    let keys: Value = serde_json::from_str(&ok(&["key", "list", "--json"])).unwrap();
    assert_eq!(keys[0]["limits"]["rpm"], 20);
    assert_eq!(keys[0]["limits"]["burst"], 5, "left out: kept");
    assert_eq!(keys[0]["models"], json!(["gpt-5.5"]));
    let tenants: Value = serde_json::from_str(&ok(&["tenant", "list", "--json"])).unwrap();
    assert_eq!(tenants[0]["limits"]["rpm"], Value::Null);
    assert_eq!(tenants[0]["limits"]["daily_tokens"], 500);
    assert_eq!(tenants[0]["hidden_models"], json!(["gpt-5.2"]));

    for refused in [
        &["key", "update", "ci", "--clear", "rpm"][..],
        &["key", "update", "ci", "--rpm", "0"],
        &["key", "update", "ci", "--rpm", "5", "--clear", "rpm"],
        &["key", "update", "ci", "--clear", "colour"],
        &["key", "update", "ci"],
        &["key", "update", "nobody", "--rpm", "5"],
        &["tenant", "update", "team", "--max-concurrent", "0"],
    ] {
        let output = run(relay(dir.path()).args(refused));
        assert!(!output.status.success(), "{refused:?} is refused");
        assert!(stdout(&output).is_empty());
    }
}

async fn tag_of(
    app: &TestApp,
    key: &str,
    path: &str,
    if_none_match: Option<&str>,
) -> (u16, String) {
    let mut request = crate::helpers::client().get(app.url(path)).bearer_auth(key);
    if let Some(tag) = if_none_match {
        request = request.insert_header(("if-none-match", tag));
    }
    let mut response = request.send().await.unwrap();
    response.body().await.unwrap();
    let tag = response
        .headers()
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    (response.status().as_u16(), tag)
}

/// A catalog's tag is the caller's: another tenant's tag is no match, and a tenant whose hidden
/// models change gets a new tag (so a client holding the old one refetches).
#[actix_web::test]
async fn a_catalog_tag_belongs_to_its_caller_and_changes_with_the_tenants_hides() {
    let app = spawn_app().await;
    let write = app.admin_token(AdminScope::Write).await;
    app.admin("POST", "/admin/v1/tenants", &write)
        .send_json(&json!({"name": "narrow", "hidden_models": ["gpt-5.4-mini"]}))
        .await
        .unwrap();
    let mut created = app
        .admin("POST", "/admin/v1/keys", &write)
        .send_json(&json!({"name": "n", "tenant": "narrow"}))
        .await
        .unwrap();
    let narrow: Value = created.json().await.unwrap();
    let narrow = narrow["key"].as_str().unwrap().to_owned();
    let known = eventually(5, || async {
        app.get("/v1/models")
            .bearer_auth(&narrow)
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    assert!(known);
    for path in ["/v1/models", "/v1/models?client_version=0.171.0"] {
        let (_, everyone) = tag_of(&app, &app.key, path, None).await;
        let (_, hidden) = tag_of(&app, &narrow, path, None).await;
        assert_ne!(
            everyone, hidden,
            "{path}: different catalogs, different tags"
        );
        let (status, _) = tag_of(&app, &narrow, path, Some(&everyone)).await;
        assert_eq!(status, 200, "{path}: another caller's tag is no match");
        assert_eq!(tag_of(&app, &narrow, path, Some(&hidden)).await.0, 304);
    }
    let (_, before) = tag_of(&app, &narrow, "/v1/models", None).await;
    let mut changed = app
        .admin("PATCH", "/admin/v1/tenants/narrow", &write)
        .send_json(&json!({"hidden_models": null}))
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    changed.body().await.unwrap();
    let refetched = eventually(5, || async {
        let (status, tag) = tag_of(&app, &narrow, "/v1/models", Some(&before)).await;
        status == 200 && tag != before
    })
    .await;
    assert!(refetched, "a changed tenant hide changes the tag");
    app.stop().await;
}
