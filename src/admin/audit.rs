//! The audit rows of the admin API: one per act (every call that is not a read) and one per
//! refused call (401, 403), with its actor — the admin token's id and name, or nobody the relay
//! knows — the act, its target and its result. Built here, around the admin-token gate, from
//! the route that was matched; handlers only say what they created ([`created`]).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};
use compact_str::{CompactString, ToCompactString};

use super::AdminState;
use crate::audit::{now_ms, ActorKind, Record};
use crate::credentials::AdminPrincipal;
use crate::edge::audit::endpoint;
use crate::edge::context::Unlogged;
use crate::edge::error::ErrorCode;
use crate::edge::guard::bearer;
use crate::obs::{bounded, limit};
use crate::state::AppState;

/// What a handler created (an account, a key, a tenant): the act's target when the path names
/// none.
#[derive(Clone)]
struct Created(String);

/// `response`, naming `id` as what the act created.
pub fn created(response: HttpResponse, id: &str) -> HttpResponse {
    let mut response = response;
    response.extensions_mut().insert(Created(id.to_owned()));
    response
}

/// Middleware around `/admin/v1`: records acts and refused calls.
pub async fn record_acts(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(audit) = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.audit().clone())
        .filter(|audit| audit.enabled())
    else {
        return next.call(req).await;
    };
    let began = now_ms();
    // Reading what a content capture recorded opens sealed bodies: an act, unlike other reads.
    let reads =
        matches!(*req.method(), Method::GET | Method::HEAD) && !opens_captured_content(&req);
    let presented = bearer(req.headers()).map(str::to_owned);
    let res = next.call(req).await?;
    let status = res.status().as_u16();
    let refused = matches!(status, 401 | 403);
    if (reads && !refused) || res.request().extensions().contains::<Unlogged>() {
        return Ok(res);
    }
    let mut record = Record::act(ActorKind::Unauthenticated, act_of(&res));
    record.at_ms = began;
    record.status = Some(status);
    record.endpoint = Some(endpoint(
        &bounded(res.request().method().as_str(), limit::METHOD),
        &bounded(res.request().path(), limit::PATH),
    ));
    record.client_addr = res
        .request()
        .peer_addr()
        .map(|a| a.ip().to_compact_string());
    record.request_id = res
        .request()
        .extensions()
        .get::<crate::edge::context::RequestContext>()
        .map(|c| c.id.as_str().into());
    name_actor(&mut record, &res, presented.as_deref());
    record.target = target_of(&res);
    record.result = Some(match res.status().is_success() {
        true => "ok".into(),
        false => res
            .response()
            .extensions()
            .get::<ErrorCode>()
            .map_or_else(|| status.to_compact_string(), |code| code.0.as_str().into()),
    });
    if refused {
        record.action = "admin.refused".into();
    }
    audit.record(record);
    Ok(res)
}

/// A read of the records a content capture took (`/admin/v1/audit/captures/{id}/records…`).
fn opens_captured_content(req: &ServiceRequest) -> bool {
    req.path()
        .strip_prefix("/admin/v1/audit/captures/")
        .is_some_and(|rest| rest.contains("/records"))
}

/// The admin token that called: the one the gate let through, or, on a 403, the valid token
/// that lacked the scope. A token the relay does not know names nobody.
fn name_actor<B>(record: &mut Record, res: &ServiceResponse<B>, presented: Option<&str>) {
    let principal = res.request().extensions().get::<AdminPrincipal>().cloned();
    let principal = principal.or_else(|| {
        let state = res.request().app_data::<web::Data<AdminState>>()?;
        state.tokens().find(presented?)
    });
    if let Some(principal) = principal {
        record.actor_kind = Some(ActorKind::AdminToken);
        record.actor_id = Some(principal.token_id.to_compact_string());
        record.actor_name = Some(principal.name.to_compact_string());
    }
}

/// What the act was done to: the `{id}` of the path, else what the handler created.
fn target_of<B>(res: &ServiceResponse<B>) -> Option<CompactString> {
    let request = res.request();
    let named = request.match_info().get("id");
    let named = named.map(|id| CompactString::from(bounded(id, limit::MODEL)));
    named.or_else(|| {
        res.response()
            .extensions()
            .get::<Created>()
            .map(|c| c.0.as_str().into())
    })
}

/// The act's name, from the route matched and the method.
fn act_of<B>(res: &ServiceResponse<B>) -> String {
    let request = res.request();
    let pattern = request.match_pattern();
    let route = pattern
        .as_deref()
        .and_then(|p| p.strip_prefix("/admin/v1"))
        .unwrap_or("");
    let act = match (request.method().as_str(), route) {
        ("POST", "/accounts") => "account.import",
        ("DELETE", "/accounts/{id}") => "account.remove",
        ("POST", "/accounts/{id}/enable") => "account.enable",
        ("POST", "/accounts/{id}/disable") => "account.disable",
        ("POST", "/accounts/{id}/drain") => "account.drain",
        ("POST", "/accounts/{id}/refresh") => "account.refresh",
        ("POST", "/accounts/{id}/routing") => "account.routing",
        ("POST", "/logins/device") => "account.login.device",
        ("POST", "/logins/paste") => "account.login.paste",
        ("POST", "/logins/{id}/complete") => "account.login",
        ("POST", "/keys") => "key.create",
        ("PATCH", "/keys/{id}") => "key.update",
        ("DELETE", "/keys/{id}") => "key.revoke",
        ("POST", "/tenants") => "tenant.create",
        ("PATCH", "/tenants/{id}") => "tenant.update",
        ("DELETE", "/tenants/{id}") => "tenant.delete",
        ("POST", "/reload") => "settings.reload",
        ("POST", "/audit/captures") => "capture.start",
        ("DELETE", "/audit/captures/{id}") => "capture.stop",
        ("GET", "/audit/captures/{id}/records" | "/audit/captures/{id}/records/{request_id}") => {
            "capture.read"
        }
        ("GET" | "HEAD", _) => "admin.read",
        _ => "admin.other",
    };
    act.to_owned()
}
