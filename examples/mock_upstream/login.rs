//! The login side of the mock issuer: `GET /oauth/authorize` (auto-approves by redirecting to
//! `redirect_uri?code=…&state=…`, or with a scripted `error=`), the device-code endpoints
//! `POST /api/accounts/deviceauth/usercode` and `/token` (`codex login --device-auth`), and the
//! authorization codes both hand out, checked (PKCE S256, redirect URI, single use) by the code
//! exchange in `oauth.rs`.
//!
//! Device polls: the first `pending_polls` polls answer 403 (still pending), then the scripted
//! outcome: approved (200 with `authorization_code` + the PKCE pair), denied or expired (400).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::oauth::Account;
use super::{detail, random_hex, MockState, RecordedRequest};

/// What the device-code endpoints answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceOutcome {
    Approved,
    Denied,
    Expired,
}

/// The scriptable login behaviour.
pub struct LoginScript {
    /// The account a login signs in as.
    pub account: (String, String, String),
    /// Answer the authorize redirect with `error` and `error_description` instead of a code.
    pub authorize_error: Option<(String, String)>,
    /// `usercode` answers 404 (device-code login not enabled).
    pub usercode_not_found: bool,
    /// The `interval` string of the usercode answer.
    pub interval: String,
    pub pending_polls: usize,
    pub outcome: DeviceOutcome,
    polls: usize,
    devices: HashMap<String, String>,
    codes: HashMap<String, IssuedCode>,
}

impl Default for LoginScript {
    fn default() -> Self {
        LoginScript {
            account: (
                "acct-mock-oauth".to_owned(),
                "oauth@example.com".to_owned(),
                "plus".to_owned(),
            ),
            authorize_error: None,
            usercode_not_found: false,
            interval: "0".to_owned(),
            pending_polls: 0,
            outcome: DeviceOutcome::Approved,
            polls: 0,
            devices: HashMap::new(),
            codes: HashMap::new(),
        }
    }
}

impl LoginScript {
    /// Device-token polls received so far.
    pub fn polls(&self) -> usize {
        self.polls
    }

    pub(super) fn account_or_default(&self) -> Account {
        self.login_account()
    }

    fn login_account(&self) -> Account {
        let (id, email, plan) = self.account.clone();
        Account { id, email, plan }
    }

    fn issue_code(&mut self, challenge: &str, redirect_uri: &str) -> String {
        let code = format!("ac_{}", random_hex(16));
        let issued = IssuedCode {
            account: self.login_account(),
            challenge: challenge.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
        };
        self.codes.insert(code.clone(), issued);
        code
    }

    /// The account of a code issued here, once: PKCE and the redirect URI must match.
    pub(super) fn redeem(
        &mut self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Option<Result<Account, &'static str>> {
        let issued = self.codes.remove(code)?;
        if challenge_of(verifier) != issued.challenge {
            return Some(Err("code_verifier does not match the code_challenge"));
        }
        if redirect_uri != issued.redirect_uri {
            return Some(Err("redirect_uri does not match the authorization request"));
        }
        Some(Ok(issued.account))
    }
}

struct IssuedCode {
    account: Account,
    challenge: String,
    redirect_uri: String,
}

fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `GET /oauth/authorize`: checks the parameters the Codex CLI sends, then redirects.
pub(super) fn authorize(state: &MockState, req: &RecordedRequest) -> HttpResponse {
    let query: HashMap<String, String> =
        actix_web::web::Query::<HashMap<String, String>>::from_query(&req.query)
            .map(|q| q.into_inner())
            .unwrap_or_default();
    let get = |k: &str| query.get(k).map(String::as_str).unwrap_or_default();
    let required = [
        "client_id",
        "redirect_uri",
        "state",
        "code_challenge",
        "scope",
    ];
    if get("response_type") != "code"
        || get("code_challenge_method") != "S256"
        || required.iter().any(|k| get(k).is_empty())
    {
        return detail(StatusCode::BAD_REQUEST, "invalid authorize request");
    }
    let mut script = state.login();
    let mut location = url::Url::parse(get("redirect_uri")).ok();
    let Some(location) = location.as_mut() else {
        return detail(StatusCode::BAD_REQUEST, "invalid redirect_uri");
    };
    match &script.authorize_error {
        Some((error, description)) => {
            let (error, description) = (error.clone(), description.clone());
            location
                .query_pairs_mut()
                .append_pair("error", &error)
                .append_pair("error_description", &description)
                .append_pair("state", get("state"));
        }
        None => {
            let code = script.issue_code(get("code_challenge"), get("redirect_uri"));
            location
                .query_pairs_mut()
                .append_pair("code", &code)
                .append_pair("scope", get("scope"))
                .append_pair("state", get("state"));
        }
    }
    HttpResponse::Found()
        .insert_header(("location", location.as_str()))
        .finish()
}

/// `POST /api/accounts/deviceauth/usercode`.
pub(super) fn usercode(state: &MockState, req: &RecordedRequest) -> HttpResponse {
    let mut script = state.login();
    if script.usercode_not_found {
        return detail(StatusCode::NOT_FOUND, "Not Found");
    }
    if req
        .json()
        .and_then(|b| b["client_id"].as_str().map(str::to_owned))
        .is_none()
    {
        return detail(StatusCode::BAD_REQUEST, "client_id is required");
    }
    let device_auth_id = format!("dev_{}", random_hex(8));
    let user_code = format!("{}-{}", &random_hex(2).to_uppercase(), &random_hex(3)[..5]);
    script
        .devices
        .insert(device_auth_id.clone(), user_code.clone());
    HttpResponse::Ok().json(json!({
        "device_auth_id": device_auth_id,
        "user_code": user_code,
        "interval": script.interval,
    }))
}

/// `POST /api/accounts/deviceauth/token`.
pub(super) fn device_token(state: &MockState, req: &RecordedRequest) -> HttpResponse {
    let body = req.json().unwrap_or(Value::Null);
    let mut script = state.login();
    let known = body["device_auth_id"]
        .as_str()
        .and_then(|id| script.devices.get(id))
        .is_some_and(|code| Some(code.as_str()) == body["user_code"].as_str());
    if !known {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "unknown device code",
        );
    }
    script.polls += 1;
    if script.polls <= script.pending_polls {
        return detail(StatusCode::FORBIDDEN, "authorization pending");
    }
    match script.outcome {
        DeviceOutcome::Denied => error(
            StatusCode::BAD_REQUEST,
            "access_denied",
            "The user denied the request.",
        ),
        DeviceOutcome::Expired => error(
            StatusCode::BAD_REQUEST,
            "expired_token",
            "The device code has expired.",
        ),
        DeviceOutcome::Approved => {
            let verifier = random_hex(32);
            let challenge = challenge_of(&verifier);
            let redirect_uri = format!("{}/deviceauth/callback", issuer_of(req));
            let code = script.issue_code(&challenge, &redirect_uri);
            HttpResponse::Ok().json(json!({
                "authorization_code": code,
                "code_challenge": challenge,
                "code_verifier": verifier,
            }))
        }
    }
}

/// The issuer's own base URL as the caller reached it.
fn issuer_of(req: &RecordedRequest) -> String {
    format!("http://{}", req.header("host").unwrap_or("localhost"))
}

fn error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": {"code": code, "message": message}}))
}
