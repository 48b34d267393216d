//! The model registry: the upstream catalog fetched per plan, aliases, hidden models and key
//! allow-lists through `GET /v1/models` (both shapes), `GET /v1/models/{id}` and
//! `POST /v1/responses`, ETags, and routing by plan.

use codex_relay::domain::Limits;
use codex_relay::oauth::auth_json;
use codex_relay::store::{keys::reveal, NewKey, NewTenant};
use serde_json::Value;

use crate::helpers::{body, error_of, eventually, spawn_app, spawn_app_seeded, TestApp};
use crate::mock_upstream::{fake_auth_json, REQUIRED_CATALOG_FIELDS};

async fn openai_ids(app: &TestApp, key: &str) -> Vec<String> {
    let mut response = app.get("/v1/models").bearer_auth(key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let list: Value = response.json().await.unwrap();
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn codex_catalog(app: &TestApp, key: &str) -> Vec<Value> {
    let mut response = app
        .get("/v1/models?client_version=0.171.0")
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let catalog: Value = response.json().limit(1 << 20).await.unwrap();
    catalog["models"].as_array().unwrap().clone()
}

fn slugs(models: &[Value]) -> Vec<&str> {
    models.iter().map(|m| m["slug"].as_str().unwrap()).collect()
}

fn assert_codex_shape(models: &[Value]) {
    for model in models {
        for field in REQUIRED_CATALOG_FIELDS {
            assert!(
                model.get(field).is_some(),
                "{} lacks {field}",
                model["slug"]
            );
        }
        assert!(model["truncation_policy"]["limit"].is_u64());
        for level in model["supported_reasoning_levels"].as_array().unwrap() {
            assert!(level["effort"].is_string() && level["description"].is_string());
        }
    }
}

async fn status_for(app: &TestApp, key: &str, model: &str) -> (u16, Value) {
    let mut response = app
        .responses_as(key)
        .send_json(&body(model, "hi", false))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let value = if status == 200 {
        response.json().limit(1 << 20).await.unwrap()
    } else {
        error_of(&mut response).await
    };
    (status, value)
}

#[actix_web::test]
async fn the_catalog_is_fetched_from_the_upstream_and_served_in_both_shapes() {
    let app = spawn_app().await;
    assert_eq!(
        openai_ids(&app, &app.key).await,
        ["gpt-5.5", "gpt-5.4-mini"]
    );
    let models = codex_catalog(&app, &app.key).await;
    assert_eq!(slugs(&models), ["gpt-5.5", "gpt-5.4-mini"]);
    assert_codex_shape(&models);
    let fetch = app
        .mock
        .state
        .requests()
        .into_iter()
        .find(|r| r.path == "/models")
        .expect("the relay asked the upstream for its catalog");
    assert_eq!(fetch.query, "client_version=0.125.0");
    assert_eq!(fetch.header("chatgpt-account-id"), Some("acct-test-1"));
    // A model the configured catalog lists but the upstream does not is no longer offered.
    let (status, error) = status_for(&app, &app.key, "gpt-5.2").await;
    assert_eq!(
        (status, error["code"].as_str()),
        (404, Some("model_not_found"))
    );
    app.stop().await;
}

#[actix_web::test]
async fn with_fetching_off_the_configured_catalog_is_served_in_codex_shape() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.models.refresh_interval_secs = 0;
        s.models.catalog = vec!["gpt-5.5".into(), "house-model".into()];
    })
    .await;
    assert_eq!(openai_ids(&app, &app.key).await, ["gpt-5.5", "house-model"]);
    let models = codex_catalog(&app, &app.key).await;
    assert_eq!(slugs(&models), ["gpt-5.5", "house-model"]);
    assert_codex_shape(&models);
    assert!(app
        .mock
        .state
        .requests()
        .iter()
        .all(|r| r.path != "/models"));
    app.stop().await;
}

#[actix_web::test]
async fn aliases_hidden_models_and_allow_lists_apply_everywhere() {
    let app = spawn_app_seeded(
        |s| {
            s.models.aliases.insert("codex".into(), "gpt-5.5".into());
            s.models.hidden = vec!["gpt-5.4-mini".into()];
        },
        |store| {
            let tenant = NewTenant {
                name: "no-alias".into(),
                limits: Limits::default(),
                hidden_models: vec!["codex".into()],
            };
            store.create_tenant(&tenant).unwrap();
            let only_codex = NewKey {
                name: "only-codex".into(),
                models: Some(vec!["codex".into()]),
                ..NewKey::default()
            };
            let tenant_key = NewKey {
                name: "tenant".into(),
                tenant: Some("no-alias".into()),
                ..NewKey::default()
            };
            [only_codex, tenant_key]
                .iter()
                .map(|k| reveal(&store.create_key_with(k).unwrap()).to_owned())
                .collect()
        },
    )
    .await;
    let (only_codex, tenant_key) = (&app.seeded[0], &app.seeded[1]);

    // The default key: the alias is listed and resolved; the hidden slug is gone.
    assert_eq!(openai_ids(&app, &app.key).await, ["gpt-5.5", "codex"]);
    assert_eq!(
        slugs(&codex_catalog(&app, &app.key).await),
        ["gpt-5.5", "codex"]
    );
    let (status, response) = status_for(&app, &app.key, "codex").await;
    assert_eq!(status, 200);
    // As OpenAI answers for its own aliases, the response names the model that answered.
    assert_eq!(response["model"], "gpt-5.5");
    assert_eq!(
        app.last_upstream_body()["model"],
        "gpt-5.5",
        "the upstream sees the slug"
    );
    let (status, error) = status_for(&app, &app.key, "gpt-5.4-mini").await;
    assert_eq!(
        (status, error["code"].as_str()),
        (404, Some("model_not_found"))
    );
    let hidden = app.get("/v1/models/gpt-5.4-mini").send().await.unwrap();
    assert_eq!(hidden.status(), 404);
    assert_eq!(
        app.get("/v1/models/codex").send().await.unwrap().status(),
        200
    );

    // A key allowed only the alias: its slug is not listed and is refused with 403.
    assert_eq!(openai_ids(&app, only_codex).await, ["codex"]);
    let (status, error) = status_for(&app, only_codex, "gpt-5.5").await;
    assert_eq!(
        (status, error["code"].as_str()),
        (403, Some("model_not_found"))
    );
    assert_eq!(error["param"], "model");
    assert_eq!(status_for(&app, only_codex, "codex").await.0, 200);
    let other = app
        .get("/v1/models/gpt-5.5")
        .bearer_auth(only_codex)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);

    // A tenant that hides the alias.
    assert_eq!(openai_ids(&app, tenant_key).await, ["gpt-5.5"]);
    assert_eq!(slugs(&codex_catalog(&app, tenant_key).await), ["gpt-5.5"]);
    assert_eq!(status_for(&app, tenant_key, "codex").await.0, 404);
    assert_eq!(status_for(&app, tenant_key, "gpt-5.5").await.0, 200);
    app.stop().await;
}

#[actix_web::test]
async fn an_unchanged_catalog_answers_304_to_its_etag() {
    let app = spawn_app().await;
    for path in [
        "/v1/models",
        "/v1/models?client_version=0.171.0",
        "/v1/models/gpt-5.5",
    ] {
        let mut first = app.get(path).send().await.unwrap();
        assert_eq!(first.status(), 200);
        let etag = first
            .headers()
            .get("etag")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        first.body().await.unwrap();
        let mut again = app
            .get(path)
            .insert_header(("if-none-match", etag.as_str()))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(again.headers().get("etag").unwrap(), etag.as_str());
        assert!(again.body().await.unwrap().is_empty());
        let stale = app
            .get(path)
            .insert_header(("if-none-match", "\"something-else\""))
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), 200, "{path}");
    }
    // The two shapes are different bodies, so their tags differ.
    let list = app.get("/v1/models").send().await.unwrap();
    let catalog = app.get("/v1/models?client_version=1").send().await.unwrap();
    assert_ne!(list.headers().get("etag"), catalog.headers().get("etag"));
    // A Codex client compares `x-models-etag` of each answer with its catalog's tag: the relay
    // sends the tag of the caller's catalog, not the upstream's.
    let mut answer = app
        .responses()
        .send_json(&body("gpt-5.5", "hi", true))
        .await
        .unwrap();
    assert_eq!(
        answer.headers().get("x-models-etag"),
        catalog.headers().get("etag")
    );
    answer.body().await.unwrap();
    app.stop().await;
}

#[actix_web::test]
async fn requests_go_only_to_accounts_whose_plan_serves_the_model() {
    let app = spawn_app_seeded(
        |s| {
            s.models.refresh_interval_secs = 1;
            // Turns rotate, so a model both plans serve visibly goes to both accounts.
            s.routing.strategy = codex_relay::settings::RoutingStrategy::RoundRobin;
        },
        |store| {
            let exp = chrono::Utc::now().timestamp() + 3600;
            let pro = fake_auth_json("acct-test-2", "pro@example.com", "pro", exp);
            let account = auth_json::parse(&pro.to_string()).unwrap();
            store.import_account(&account).unwrap();
            Vec::new()
        },
    )
    .await;
    app.mock.state.set_models_for("acct-test-1", &["gpt-5.5"]);
    app.mock
        .state
        .set_models_for("acct-test-2", &["gpt-5.5", "gpt-6"]);
    let refreshed = eventually(10, || async {
        openai_ids(&app, &app.key).await == ["gpt-5.5", "gpt-6"]
    })
    .await;
    assert!(
        refreshed,
        "the catalog is fetched again on its interval, per plan"
    );

    let accounts_of = |from: usize| -> Vec<String> {
        app.mock.state.responses_requests()[from..]
            .iter()
            .map(|r| r.header("chatgpt-account-id").unwrap().to_owned())
            .collect()
    };
    for _ in 0..4 {
        assert_eq!(status_for(&app, &app.key, "gpt-6").await.0, 200);
    }
    assert_eq!(
        accounts_of(0),
        ["acct-test-2"; 4],
        "only the pro plan serves gpt-6"
    );
    for _ in 0..4 {
        assert_eq!(status_for(&app, &app.key, "gpt-5.5").await.0, 200);
    }
    let mut both = accounts_of(4);
    both.sort();
    both.dedup();
    assert_eq!(
        both,
        ["acct-test-1", "acct-test-2"],
        "both plans serve gpt-5.5"
    );
    app.stop().await;
}
