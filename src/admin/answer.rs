//! The answers the admin API's tables (tenants, keys, accounts) give alike: a list of views, and
//! a view with one member more — the tokens a key or tenant used, or a new key's text.

use actix_web::HttpResponse;
use chrono::Utc;
use serde::Serialize;
use serde_json::{json, Value};

use super::error::AdminError;
use crate::domain::Scope;
use crate::state::AppState;

/// `{"object": "list", "data": […]}`.
pub fn listed<V: Serialize>(views: impl IntoIterator<Item = V>) -> HttpResponse {
    let data: Vec<V> = views.into_iter().collect();
    HttpResponse::Ok().json(json!({ "object": "list", "data": data }))
}

/// `view` (a struct, so a JSON object) with the member `name` added.
pub fn with_member(view: impl Serialize, name: &str, value: Value) -> Result<Value, AdminError> {
    match serde_json::to_value(view) {
        Ok(Value::Object(mut members)) => {
            members.insert(name.to_owned(), value);
            Ok(Value::Object(members))
        }
        _ => Err(AdminError::Internal),
    }
}

/// `view` with `usage`: the tokens the key or tenant `id` used today and this month, as its
/// quotas count them.
pub fn with_usage(
    view: impl Serialize,
    app: &AppState,
    scope: Scope,
    id: &str,
) -> Result<HttpResponse, AdminError> {
    let (today, month) = app.governor().used(scope, id, Utc::now());
    let usage = json!({ "tokens_today": today, "tokens_this_month": month });
    Ok(HttpResponse::Ok().json(with_member(view, "usage", usage)?))
}
