//! Tenants, API keys and the model registry through the admin plane: the write scope to change,
//! the key shown once, limits that take effect on the data plane, usage views, revocation.

use codex_relay::store::admin_tokens::AdminScope;
use serde_json::json;

use crate::helpers::{admin_call as send, body, error_of, eventually, spawn_app};

#[actix_web::test]
async fn tenants_and_keys_are_managed_over_the_admin_api() {
    let app = spawn_app().await;
    let read = app.admin_token(AdminScope::Read).await;
    let write = app.admin_token(AdminScope::Write).await;
    let tenant = json!({"name": "search", "rpm": 600, "daily_tokens": 1_000_000,
                        "hidden_models": ["gpt-5.4-mini"]});

    let (status, error) = send(
        &app,
        "POST",
        "/admin/v1/tenants",
        &read,
        Some(tenant.clone()),
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (403, Some("insufficient_scope"))
    );
    let (status, created) = send(
        &app,
        "POST",
        "/admin/v1/tenants",
        &write,
        Some(tenant.clone()),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["object"], "relay.tenant");
    assert_eq!(created["limits"]["rpm"], 600);
    let (status, error) = send(&app, "POST", "/admin/v1/tenants", &write, Some(tenant)).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    let zero = json!({"name": "zero", "rpm": 0});
    let (status, error) = send(&app, "POST", "/admin/v1/tenants", &write, Some(zero)).await;
    assert_eq!(
        (status, error["error"]["param"].as_str()),
        (400, Some("rpm"))
    );
    let unknown_field = json!({"name": "x", "rate": 5});
    assert_eq!(
        send(
            &app,
            "POST",
            "/admin/v1/tenants",
            &write,
            Some(unknown_field)
        )
        .await
        .0,
        400
    );

    let key_request = json!({"name": "ci", "tenant": "search", "rpm": 30, "burst": 5,
                             "models": ["gpt-5.5"], "expires": "2099-01-01T00:00:00Z"});
    let (status, key) = send(&app, "POST", "/admin/v1/keys", &write, Some(key_request)).await;
    assert_eq!(status, 201, "{key}");
    let text = key["key"].as_str().unwrap().to_owned();
    assert!(text.starts_with(key["prefix"].as_str().unwrap()));
    assert_eq!(key["tenant"], "search");
    assert_eq!(key["expires_at"], "2099-01-01T00:00:00Z");
    let key_id = key["id"].as_str().unwrap().to_owned();
    let (_, keys) = send(&app, "GET", "/admin/v1/keys", &read, None).await;
    assert!(
        !keys.to_string().contains(&text),
        "the key is shown only once"
    );
    assert!(!app.logs().contains(&text), "the key is never logged");
    let orphan = json!({"name": "orphan", "tenant": "nope"});
    let (status, error) = send(&app, "POST", "/admin/v1/keys", &write, Some(orphan)).await;
    assert_eq!(
        (status, error["error"]["param"].as_str()),
        (400, Some("tenant"))
    );

    // The new key works on the data plane with its own policy.
    let served = eventually(5, || async {
        let response = app
            .responses_as(&text)
            .send_json(&body("gpt-5.5", "hi", false))
            .await
            .unwrap();
        response.status() == 200
            && response
                .headers()
                .get("x-ratelimit-limit-requests")
                .unwrap()
                == "30"
    })
    .await;
    assert!(
        served,
        "the relay picks up a key created over the admin API"
    );
    let mut refused = app
        .responses_as(&text)
        .send_json(&body("gpt-5.4-mini", "hi", false))
        .await
        .unwrap();
    assert_eq!(refused.status(), 404, "hidden by the tenant");
    error_of(&mut refused).await;
    let counted = eventually(5, || async {
        let (_, view) = send(
            &app,
            "GET",
            &format!("/admin/v1/keys/{key_id}"),
            &read,
            None,
        )
        .await;
        view["usage"]["tokens_today"].as_u64().unwrap() > 0
    })
    .await;
    assert!(counted, "the key's usage is shown");
    let (_, view) = send(&app, "GET", "/admin/v1/tenants/search", &read, None).await;
    assert!(view["usage"]["tokens_this_month"].as_u64().unwrap() > 0);
    assert_eq!(view["active_keys"], 1);

    let (status, _) = send(&app, "DELETE", "/admin/v1/tenants/search", &write, None).await;
    assert_eq!(status, 409, "a tenant with active keys stays");
    let (status, revoked) = send(
        &app,
        "DELETE",
        &format!("/admin/v1/keys/{key_id}"),
        &write,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(revoked["revoked_at"].is_string());
    let gone = eventually(5, || async {
        app.get("/v1/models")
            .bearer_auth(&text)
            .send()
            .await
            .unwrap()
            .status()
            == 401
    })
    .await;
    assert!(gone, "a revoked key stops working");
    assert_eq!(
        send(&app, "DELETE", "/admin/v1/tenants/search", &write, None)
            .await
            .0,
        200
    );
    assert_eq!(
        send(&app, "GET", "/admin/v1/tenants/search", &read, None)
            .await
            .0,
        404
    );
    assert_eq!(
        send(&app, "GET", "/admin/v1/keys/nope", &read, None)
            .await
            .0,
        404
    );
    app.stop().await;
}

/// Bodies are strict: a field the API does not know is refused by name (a typo must not
/// silently leave a limit unset), on creation and on change alike; a burst is a key's only.
#[actix_web::test]
async fn unknown_fields_are_refused_by_name_and_a_tenant_takes_no_burst() {
    let app = spawn_app().await;
    let write = app.admin_token(AdminScope::Write).await;
    let created = |path, body| send(&app, "POST", path, &write, Some(body));
    assert_eq!(
        created("/admin/v1/tenants", json!({"name": "team"}))
            .await
            .0,
        201
    );
    let (status, key) = created("/admin/v1/keys", json!({"name": "ci", "rpm": 5})).await;
    assert_eq!(status, 201, "{key}");
    let key_path = format!("/admin/v1/keys/{}", key["id"].as_str().unwrap());
    let cases = [
        (
            "POST",
            "/admin/v1/keys",
            json!({"name": "k", "rpm": 5, "rate": 5}),
            "rate",
        ),
        (
            "POST",
            "/admin/v1/tenants",
            json!({"name": "t", "models": []}),
            "models",
        ),
        (
            "PATCH",
            key_path.as_str(),
            json!({"rpm": 6, "daily_token": 9}),
            "daily_token",
        ),
        (
            "PATCH",
            "/admin/v1/tenants/team",
            json!({"expires": null}),
            "expires",
        ),
    ];
    for (method, path, body, field) in cases {
        let (status, error) = send(&app, method, path, &write, Some(body)).await;
        let message = error["error"]["message"].as_str().unwrap();
        assert_eq!(status, 400, "{method} {path}: {error}");
        assert!(
            message.contains(&format!("unknown field `{field}`")),
            "{method} {path}: {message}"
        );
    }
    let tenant_bursts = [
        (
            "POST",
            "/admin/v1/tenants",
            json!({"name": "t2", "rpm": 10, "burst": 5}),
        ),
        ("PATCH", "/admin/v1/tenants/team", json!({"burst": 5})),
    ];
    for (method, path, body) in tenant_bursts {
        let (status, error) = send(&app, method, path, &write, Some(body)).await;
        assert_eq!(
            (status, error["error"]["param"].as_str()),
            (400, Some("burst")),
            "{method} {path}: {error}"
        );
    }
    app.stop().await;
}

#[actix_web::test]
async fn the_registry_is_shown_to_operators() {
    let app = spawn_app().await;
    let read = app.admin_token(AdminScope::Read).await;
    let (status, registry) = send(&app, "GET", "/admin/v1/models", &read, None).await;
    assert_eq!(status, 200);
    assert_eq!(registry["models"], json!(["gpt-5.5", "gpt-5.4-mini"]));
    assert_eq!(registry["fetched_plans"], json!(["plus"]));
    app.stop().await;
}
