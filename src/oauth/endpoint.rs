//! Calls to the OAuth issuer, shaped as the Codex CLI's: the refresh grant (JSON), the
//! authorization-code exchange (form), and the device-code endpoints. One short-lived awc client
//! per call: awc is `!Send`, and these calls are rare.
//!
//! No secret ever appears in an [`EndpointError`]: it is the one way the issuer's error text
//! enters the relay (logs, error bodies, the admin view and the store all take it from here), so
//! every part of it — an answer's code and message, a transport or decoding error — is redacted
//! and bounded where it is built ([`crate::obs::redact_secrets`]).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::obs::redact_secrets;
use crate::settings::{OauthSettings, UpstreamSettings};
use crate::upstream::outbound::Outbound;

/// Largest answer read from the issuer.
const BODY_LIMIT: usize = 256 * 1024;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EndpointError {
    /// The issuer answered with an error status.
    #[error("the OAuth issuer answered {status}{}", describe(.code, .message))]
    Rejected {
        status: u16,
        code: Option<String>,
        message: Option<String>,
    },
    #[error("the OAuth issuer could not be reached: {0}")]
    Transport(String),
    #[error("the OAuth issuer's answer could not be read: {0}")]
    BadAnswer(String),
}

fn describe(code: &Option<String>, message: &Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!(" ({c}: {m})"),
        (Some(c), None) => format!(" ({c})"),
        (None, Some(m)) => format!(" ({m})"),
        (None, None) => String::new(),
    }
}

/// What the token endpoint returned; for a refresh the issuer may omit any part (the parts present
/// replace the stored ones).
#[derive(Deserialize)]
pub struct TokenAnswer {
    pub id_token: Option<String>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for TokenAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenAnswer([redacted])")
    }
}

/// The issuer as the relay calls it.
#[derive(Clone)]
pub struct OauthEndpoint {
    pub settings: OauthSettings,
    originator: String,
    user_agent: String,
    outbound: Outbound,
}

impl OauthEndpoint {
    pub fn new(
        oauth: &OauthSettings,
        upstream: &UpstreamSettings,
        outbound: &Outbound,
    ) -> OauthEndpoint {
        OauthEndpoint {
            settings: oauth.clone(),
            originator: upstream.originator.clone(),
            user_agent: upstream.user_agent.clone(),
            outbound: outbound.clone(),
        }
    }

    /// The `originator` the relay presents itself with.
    pub fn originator(&self) -> &str {
        &self.originator
    }

    fn post(&self, path: &str) -> awc::ClientRequest {
        let timeout = Duration::from_secs(self.settings.token_timeout_secs);
        self.outbound
            .client(timeout, timeout)
            .post(self.settings.endpoint(path))
            .insert_header(("originator", self.originator.as_str()))
            .insert_header(("user-agent", self.user_agent.as_str()))
            .insert_header(("accept", "application/json"))
    }

    /// The refresh grant: JSON body, answer parts optional.
    pub async fn refresh(
        &self,
        refresh_token: &SecretString,
    ) -> Result<TokenAnswer, EndpointError> {
        let body = json!({
            "client_id": self.settings.client_id,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token.expose_secret(),
        });
        let request = self.post("oauth/token").send_json(&body);
        answer_json(request.await).await
    }

    /// The authorization-code grant (form-encoded), for browser and device-code logins.
    pub async fn exchange_code(
        &self,
        code: &SecretString,
        verifier: &SecretString,
        redirect_uri: &str,
    ) -> Result<TokenAnswer, EndpointError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.expose_secret()),
            ("redirect_uri", redirect_uri),
            ("client_id", self.settings.client_id.as_str()),
            ("code_verifier", verifier.expose_secret()),
        ];
        let request = self.post("oauth/token").send_form(&form);
        answer_json(request.await).await
    }

    /// `POST {issuer}/api/accounts/deviceauth/{what}` with a JSON body.
    pub async fn device(&self, what: &str, body: &Value) -> Result<Value, EndpointError> {
        let path = format!("api/accounts/deviceauth/{what}");
        let request = self.post(&path).send_json(body);
        answer_json(request.await).await
    }
}

type Sent = Result<awc::ClientResponse, awc::error::SendRequestError>;

/// The JSON of a 2xx answer, or the error it carries.
async fn answer_json<T: serde::de::DeserializeOwned>(sent: Sent) -> Result<T, EndpointError> {
    let transport =
        |e: &dyn std::fmt::Display| EndpointError::Transport(redact_secrets(&e.to_string()));
    let mut response = sent.map_err(|e| transport(&e))?;
    let body = response
        .body()
        .limit(BODY_LIMIT)
        .await
        .map_err(|e| transport(&e))?;
    let status = response.status();
    if !status.is_success() {
        let (code, message) = error_of(&body);
        return Err(EndpointError::Rejected {
            status: status.as_u16(),
            code,
            message,
        });
    }
    // A decoding error quotes what it could not decode (`invalid type: string "…"`).
    serde_json::from_slice(&body)
        .map_err(|e| EndpointError::BadAnswer(redact_secrets(&e.to_string())))
}

/// The error code and message of an issuer's error body, looked for where the Codex CLI looks:
/// `error.code` (object), `error` (string) or top-level `code`; both redacted and bounded (an
/// issuer may echo what it was sent in either).
pub fn error_of(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let error = &value["error"];
    let code = text(&error["code"])
        .or_else(|| text(error))
        .or_else(|| text(&value["code"]));
    let message = text(&error["message"]).or_else(|| text(&value["error_description"]));
    (
        code.as_deref().map(redact_secrets),
        message.as_deref().map(redact_secrets),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_every_shape_the_issuer_uses() {
        let cases = [
            (
                r#"{"error":{"code":"refresh_token_reused","message":"used"}}"#,
                "refresh_token_reused",
            ),
            (
                r#"{"error":"invalid_grant","error_description":"bad code"}"#,
                "invalid_grant",
            ),
            (
                r#"{"code":"refresh_token_expired"}"#,
                "refresh_token_expired",
            ),
        ];
        for (body, code) in cases {
            assert_eq!(error_of(body.as_bytes()).0.as_deref(), Some(code), "{body}");
        }
        assert_eq!(error_of(b"plain text"), (None, None));
        let (_, message) =
            error_of(br#"{"error":{"message":"token rt_abcdefghijklmnopqrstu is gone"}}"#);
        assert_eq!(message.as_deref(), Some("token [redacted] is gone"));
        let (code, _) = error_of(br#"{"error":"invalid_grant: refresh_token=rt_abcdefghijklm"}"#);
        assert_eq!(
            code.as_deref(),
            Some("invalid_grant: refresh_token=[redacted]")
        );
    }
}
