//! The OAuth issuer side of the mock: `POST /oauth/token` (refresh with rotation and reuse
//! detection; authorization-code exchange), the unsigned JWTs the Codex CLI parses and a fake
//! `auth.json` as the Codex CLI writes it.
//!
//! Refresh tokens are self-describing, `rt_<base64url account claims>_<hex>`, so that a token
//! made by [`fake_auth_json`] (which has no mock instance at hand) is accepted by any mock, and
//! a refresh keeps the account, e-mail and plan. Each refresh token works once:
//!
//! ```text
//!   rt (well-formed, never used) --refresh--> used  (new rt issued)
//!   used --------------------------refresh--> 401 refresh_token_reused
//!   anything else -----------------refresh--> 401 refresh_token_invalidated
//! ```

use std::collections::{HashMap, HashSet};

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::token_script::{Minting, TokenFailure};
use super::{random_hex, unix_now, MockState, RecordedRequest};

const SCOPE: &str = "openid profile email offline_access";

/// Tokens the mock has minted, refresh tokens already spent, access tokens revoked.
#[derive(Default)]
pub(super) struct TokenRegistry {
    access_tokens: Vec<String>,
    used_refresh_tokens: HashSet<String>,
    pub(super) revoked: HashSet<String>,
}

impl TokenRegistry {
    pub(super) fn access_tokens(&self) -> &[String] {
        &self.access_tokens
    }

    pub(super) fn is_spent(&self, refresh_token: &str) -> bool {
        self.used_refresh_tokens.contains(refresh_token)
    }

    pub(super) fn is_access_token(&self, token: &str) -> bool {
        self.access_tokens.iter().any(|t| t == token)
    }
}

/// The account a token set belongs to; also the payload of a refresh token.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct Account {
    #[serde(rename = "a")]
    pub(super) id: String,
    #[serde(rename = "e")]
    pub(super) email: String,
    #[serde(rename = "p")]
    pub(super) plan: String,
}

/// A fake Codex login, as the Codex CLI writes `auth.json`: `auth_mode`, a null
/// `OPENAI_API_KEY`, `tokens{id_token, access_token, refresh_token, account_id}` and
/// `last_refresh` (RFC 3339, UTC). The access token expires at `access_exp_unix`; the refresh
/// token is accepted once by any mock upstream.
pub fn fake_auth_json(
    chatgpt_account_id: &str,
    email: &str,
    plan: &str,
    access_exp_unix: i64,
) -> Value {
    let account = Account {
        id: chatgpt_account_id.to_owned(),
        email: email.to_owned(),
        plan: plan.to_owned(),
    };
    json!({
        "auth_mode": "chatgpt",
        "OPENAI_API_KEY": null,
        "tokens": {
            "id_token": fake_jwt(&claims(&account, access_exp_unix)),
            "access_token": fake_jwt(&claims(&account, access_exp_unix)),
            "refresh_token": refresh_token_for(&account),
            "account_id": chatgpt_account_id,
        },
        "last_refresh": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    })
}

/// An unsigned JWT: header `{"alg":"none","typ":"JWT"}`, base64url-no-pad payload, and the
/// literal signature `sig` (the Codex CLI does not verify signatures).
pub fn fake_jwt(claims: &Value) -> String {
    let header = json!({"alg": "none", "typ": "JWT"});
    format!(
        "{}.{}.sig",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The payload of a JWT-shaped token, when it is a JSON object.
pub(super) fn jwt_payload(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(Value::is_object)
}

/// The claims Codex reads from both the id token and the access token (e-mail, `exp`, and the
/// plan and account id in `https://api.openai.com/auth`). `jti` makes every minted token distinct.
fn claims(account: &Account, exp: i64) -> Value {
    let user_id = format!("user-{}", account.id);
    json!({
        "email": account.email,
        "https://api.openai.com/profile": {"email": account.email, "email_verified": true},
        "https://api.openai.com/auth": {
            "chatgpt_plan_type": account.plan,
            "chatgpt_user_id": user_id,
            "user_id": user_id,
            "chatgpt_account_id": account.id,
            "chatgpt_account_is_fedramp": false,
        },
        "iss": "https://auth.openai.com",
        "sub": user_id,
        "jti": uuid::Uuid::new_v4().to_string(),
        "iat": unix_now(),
        "exp": exp,
    })
}

fn refresh_token_for(account: &Account) -> String {
    let payload = json!({"a": account.id, "e": account.email, "p": account.plan});
    format!(
        "rt_{}_{}",
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        random_hex(16)
    )
}

/// The account of a well-formed refresh token. `rt_<account-id>_<hex>` written by hand is
/// accepted too, with a made-up e-mail and plan `plus`.
fn account_of_refresh_token(token: &str) -> Option<Account> {
    let (middle, random) = token.strip_prefix("rt_")?.rsplit_once('_')?;
    if middle.is_empty() || random.is_empty() || !random.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let decoded = URL_SAFE_NO_PAD
        .decode(middle)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Account>(&bytes).ok());
    Some(decoded.unwrap_or_else(|| Account {
        id: middle.to_owned(),
        email: format!("{middle}@example.com"),
        plan: "plus".to_owned(),
    }))
}

/// `POST /oauth/token`: JSON `refresh_token` grants and form-encoded `authorization_code` grants,
/// as the Codex CLI sends them.
pub(super) fn token(state: &MockState, req: &RecordedRequest) -> HttpResponse {
    let Some(params) = token_params(req) else {
        return invalid_request("the body is neither JSON nor a form");
    };
    match params.get("grant_type").map(String::as_str) {
        Some("refresh_token") => refresh(state, params.get("refresh_token")),
        Some("authorization_code") => authorization_code(state, &params),
        // Device-code login ends in an authorization_code grant as well.
        _ => HttpResponse::BadRequest().json(json!({
            "error": "unsupported_grant_type",
            "error_description": "grant_type must be refresh_token or authorization_code",
        })),
    }
}

/// The string parameters of a token request, read as a form or as JSON by its content type.
fn token_params(req: &RecordedRequest) -> Option<HashMap<String, String>> {
    let is_form = req
        .header("content-type")
        .is_some_and(|ct| ct.contains("application/x-www-form-urlencoded"));
    if is_form {
        let body = std::str::from_utf8(&req.body).ok()?;
        let form = web::Query::<HashMap<String, String>>::from_query(body).ok()?;
        return Some(form.into_inner());
    }
    let object = req.json()?.as_object()?.clone();
    let strings = object
        .into_iter()
        .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned())));
    Some(strings.collect())
}

fn refresh(state: &MockState, refresh_token: Option<&String>) -> HttpResponse {
    let Some(refresh_token) = refresh_token.filter(|t| !t.is_empty()) else {
        return invalid_request("refresh_token is required");
    };
    let (failure, minting) = {
        let mut script = state.token_script();
        script.refresh_calls += 1;
        (script.failures.pop_front(), script.minting())
    };
    let unsafe_access = match failure {
        Some(TokenFailure::UnsafeAccessToken) => true,
        Some(failure) => return scripted_failure(failure, refresh_token),
        None => false,
    };
    let mut tokens = state.tokens();
    if tokens.used_refresh_tokens.contains(refresh_token) {
        return refresh_error(
            "refresh_token_reused",
            "Your refresh token has already been used to generate a new access token. \
             Please try signing in again.",
        );
    }
    let Some(account) = account_of_refresh_token(refresh_token) else {
        return refresh_error(
            "refresh_token_invalidated",
            "Your refresh token has been invalidated. Please try signing in again.",
        );
    };
    tokens.used_refresh_tokens.insert(refresh_token.clone());
    let mut minted = mint(&mut tokens, &account, minting);
    if unsafe_access {
        minted["access_token"] = json!("not a header value\r\nX-Injected: 1");
    }
    HttpResponse::Ok().json(minted)
}

fn scripted_failure(failure: TokenFailure, refresh_token: &str) -> HttpResponse {
    match failure {
        TokenFailure::Error { status, code } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            HttpResponse::build(status)
                .json(json!({"error": {"code": code, "message": "scripted failure"}}))
        }
        TokenFailure::Status(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            HttpResponse::build(status).json(json!({"detail": "scripted failure"}))
        }
        TokenFailure::Garbage => HttpResponse::Ok()
            .content_type("application/json")
            .body("<html>bad gateway</html>"),
        TokenFailure::Echo {
            status,
            access_token,
        } => echo(status, refresh_token, &access_token),
        // A successful rotation, answered by `refresh` itself.
        TokenFailure::UnsafeAccessToken => invalid_request("not a failure"),
    }
}

/// An answer that repeats credentials (see [`TokenFailure::Echo`]).
fn echo(status: u16, refresh_token: &str, access_token: &str) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let code = format!("invalid_grant: {refresh_token} (Bearer {access_token})");
    let message = format!("refresh_token={refresh_token}&access_token={access_token}");
    let body = if status.is_success() {
        json!(format!("{code} {message}"))
    } else {
        json!({"error": {"code": code, "message": message}})
    };
    HttpResponse::build(status).json(body)
}

fn authorization_code(state: &MockState, params: &HashMap<String, String>) -> HttpResponse {
    let present = |key: &str| params.get(key).is_some_and(|v| !v.is_empty());
    if !present("code") || !present("code_verifier") {
        return HttpResponse::BadRequest().json(json!({
            "error": "invalid_grant",
            "error_description": "code and code_verifier are required",
        }));
    }
    let minting = {
        let mut script = state.token_script();
        script.code_exchanges += 1;
        script.minting()
    };
    let get = |key: &str| params.get(key).map(String::as_str).unwrap_or_default();
    // Codes handed out by `/oauth/authorize` or a device login are checked and single-use; a
    // hand-written code (the mock's own tests) signs in as the login account.
    let redeemed = state
        .login()
        .redeem(get("code"), get("code_verifier"), get("redirect_uri"));
    let account = match redeemed {
        Some(Ok(account)) => account,
        Some(Err(reason)) => return invalid_grant(reason),
        None if get("code").starts_with("ac_") => return invalid_grant("unknown or used code"),
        None => state.login().account_or_default(),
    };
    HttpResponse::Ok().json(mint(&mut state.tokens(), &account, minting))
}

fn invalid_grant(description: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({
        "error": "invalid_grant",
        "error_description": description,
    }))
}

/// A new token set for `account`, valid for `lifetime` seconds, its JWTs carrying `padding` extra
/// bytes of claims; the access token is remembered.
fn mint(tokens: &mut TokenRegistry, account: &Account, minting: Minting) -> Value {
    let Minting { lifetime, padding } = minting;
    let exp = unix_now() + lifetime;
    let padded = || {
        let mut claims = claims(account, exp);
        if padding > 0 {
            claims["pad"] = json!("p".repeat(padding));
        }
        claims
    };
    let access_token = fake_jwt(&padded());
    tokens.access_tokens.push(access_token.clone());
    json!({
        "id_token": fake_jwt(&padded()),
        "access_token": access_token,
        "refresh_token": refresh_token_for(account),
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": SCOPE,
    })
}

/// The refresh failure shape the Codex CLI classifies by `error.code`
/// (`refresh_token_expired|reused|invalidated`).
fn refresh_error(code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::UNAUTHORIZED)
        .json(json!({"error": {"code": code, "message": message}}))
}

fn invalid_request(description: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({
        "error": "invalid_request",
        "error_description": description,
    }))
}
