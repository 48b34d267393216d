//! `GET /v1/models` and `GET /v1/models/{id}` (the configured catalog when fetching is off).

use serde_json::Value;

use crate::helpers::{error_of, spawn_app, spawn_app_with};

#[actix_web::test]
async fn the_catalog_is_listed_as_openai_model_objects() {
    let app = spawn_app().await;
    let mut response = app.get("/v1/models").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let list: Value = response.json().await.unwrap();
    assert_eq!(list["object"], "list");
    let data = list["data"].as_array().unwrap();
    assert!(data.iter().any(|m| m["id"] == "gpt-5.5"));
    for model in data {
        assert_eq!(model["object"], "model");
        assert!(model["created"].is_i64());
        assert!(model["owned_by"].is_string());
    }
    app.stop().await;
}

#[actix_web::test]
async fn one_model_is_found_by_id_and_an_unknown_one_is_a_404() {
    let app = spawn_app_with(|s| {
        s.models.refresh_interval_secs = 0;
        s.models.catalog = vec!["gpt-5.5".into(), "house-model".into()];
    })
    .await;
    let mut response = app.get("/v1/models/house-model").send().await.unwrap();
    let model: Value = response.json().await.unwrap();
    assert_eq!(model["id"], "house-model");
    let mut response = app.get("/v1/models/gpt-5.4").send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(error_of(&mut response).await["code"], "model_not_found");
    app.stop().await;
}
