//! What every login flow shares: its errors, explained for the operator, and turning the token
//! endpoint's answer into an account stored exactly like an import (same claims, same checks).

use super::auth_json::{self, AuthJsonError};
use super::endpoint::{EndpointError, TokenAnswer};
use crate::store::NewAccount;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("that is not the callback URL: paste the whole http://localhost:1455/auth/callback?code=…&state=… address from the browser's address bar")]
    NotACallback,
    #[error("the callback's state does not match this login (an old or foreign link); start the login again")]
    StateMismatch,
    #[error("Codex is not enabled for your workspace (missing_codex_entitlement); ask the workspace admin to enable Codex, then log in again")]
    NoCodexEntitlement,
    #[error("the sign-in was denied: {0}")]
    Denied(String),
    #[error("the sign-in failed: {0}")]
    Failed(String),
    #[error("device-code login is not enabled for this ChatGPT account or workspace: enable \"device code authorization for Codex\" in ChatGPT Settings → Security (or ask the workspace admin), or use `codex-relay account login --paste`")]
    DeviceCodeDisabled,
    #[error("the device code was not approved within {0} min; start the login again")]
    Expired(u64),
    #[error("the device-code login failed: {0}")]
    Device(EndpointError),
    #[error("the code could not be exchanged for tokens: {0}")]
    Exchange(EndpointError),
    #[error("the issuer's tokens are unusable: {0}")]
    BadTokens(#[from] AuthJsonError),
    #[error("the login was cancelled: {0}")]
    Cancelled(String),
}

impl LoginError {
    /// The `error` / `error_description` of a callback; an `access_denied` whose description names
    /// `missing_codex_entitlement` means Codex is not enabled for the workspace.
    pub fn from_callback_error(error: &str, description: Option<&str>) -> LoginError {
        let description = description.unwrap_or_default();
        let shown = crate::obs::redact_secrets(description);
        if description.contains("missing_codex_entitlement") {
            LoginError::NoCodexEntitlement
        } else if error == "access_denied" {
            LoginError::Denied(if shown.is_empty() {
                error.to_owned()
            } else {
                shown
            })
        } else {
            // The callback's `error` is the caller's text as much as the description is.
            let text = crate::obs::redact_secrets(&format!("{error} {description}"));
            LoginError::Failed(text.trim().to_owned())
        }
    }

    /// A short machine-readable code for API answers.
    pub fn code(&self) -> &'static str {
        match self {
            LoginError::NotACallback => "invalid_callback_url",
            LoginError::StateMismatch => "state_mismatch",
            LoginError::NoCodexEntitlement => "missing_codex_entitlement",
            LoginError::Denied(_) => "access_denied",
            LoginError::Failed(_) => "login_failed",
            LoginError::DeviceCodeDisabled => "device_code_disabled",
            LoginError::Expired(_) => "login_expired",
            LoginError::Device(_) => "device_code_failed",
            LoginError::Exchange(_) => "code_exchange_failed",
            LoginError::BadTokens(_) => "invalid_tokens",
            LoginError::Cancelled(_) => "login_cancelled",
        }
    }
}

/// The account of a token answer: all three tokens required (a login's code exchange answers
/// with the id, access and refresh tokens), claims read as for an auth.json, `last_refresh` now.
pub fn account_from_answer(answer: TokenAnswer) -> Result<NewAccount, LoginError> {
    let now = chrono::Utc::now().timestamp();
    Ok(auth_json::from_tokens(
        answer.id_token,
        answer.access_token,
        answer.refresh_token,
        None,
        Some(now),
    )?)
}
