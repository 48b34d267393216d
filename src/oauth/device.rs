//! Device-code login, as `codex login --device-auth` does it: ask the issuer for a user code,
//! show it with the verification URL, poll at the issuer's interval (403/404 = still pending)
//! until approved, denied or out of time (15 minutes by default), then exchange the code like a
//! browser login.

use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{json, Value};

use super::endpoint::{EndpointError, OauthEndpoint};
use super::login::{account_from_answer, LoginError};
use crate::store::NewAccount;

/// A user code waiting for approval.
#[derive(Debug, Clone)]
pub struct DeviceCode {
    pub device_auth_id: String,
    pub user_code: String,
    pub verification_url: String,
    /// Pause between polls: the issuer's interval, at least the configured minimum.
    pub interval: Duration,
}

/// One poll's answer.
pub enum Poll {
    Pending,
    Approved {
        code: SecretString,
        verifier: SecretString,
    },
}

/// Step 1: a user code. A 404 means device-code login is not enabled for the account.
pub async fn request_code(endpoint: &OauthEndpoint) -> Result<DeviceCode, LoginError> {
    let body = json!({"client_id": endpoint.settings.client_id});
    let answer = match endpoint.device("usercode", &body).await {
        Ok(answer) => answer,
        Err(EndpointError::Rejected { status: 404, .. }) => {
            return Err(LoginError::DeviceCodeDisabled)
        }
        Err(e) => return Err(LoginError::Device(e)),
    };
    let text = |key: &str| {
        answer[key]
            .as_str()
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let (Some(device_auth_id), Some(user_code)) = (
        text("device_auth_id"),
        text("user_code").or_else(|| text("usercode")),
    ) else {
        let error = EndpointError::BadAnswer("no device_auth_id or user_code".to_owned());
        return Err(LoginError::Device(error));
    };
    Ok(DeviceCode {
        device_auth_id,
        user_code,
        verification_url: endpoint.settings.endpoint("codex/device"),
        interval: interval_of(&answer, endpoint.settings.device_min_interval_ms),
    })
}

/// `interval` is a string of seconds (missing = 0), floored at `min_ms` so polling never spins.
fn interval_of(answer: &Value, min_ms: u64) -> Duration {
    let secs = match &answer["interval"] {
        Value::String(s) => s.trim().parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    };
    Duration::from_secs(secs).max(Duration::from_millis(min_ms))
}

/// Step 3, once: 403 or 404 means the user has not approved yet; other errors end the login.
pub async fn poll_once(endpoint: &OauthEndpoint, code: &DeviceCode) -> Result<Poll, LoginError> {
    let body = json!({"device_auth_id": code.device_auth_id, "user_code": code.user_code});
    let answer = match endpoint.device("token", &body).await {
        Ok(answer) => answer,
        Err(EndpointError::Rejected {
            status: 403 | 404, ..
        }) => return Ok(Poll::Pending),
        Err(EndpointError::Rejected {
            code: Some(c),
            message,
            ..
        }) if c == "access_denied" || c == "authorization_declined" => {
            return Err(LoginError::Denied(message.unwrap_or(c)))
        }
        Err(EndpointError::Rejected { code: Some(c), .. }) if c.contains("expired") => {
            return Err(LoginError::Expired(15))
        }
        Err(e) => return Err(LoginError::Device(e)),
    };
    let secret = |key: &str| {
        answer[key]
            .as_str()
            .filter(|v| !v.is_empty())
            .map(|v| SecretString::from(v.to_owned()))
    };
    match (secret("authorization_code"), secret("code_verifier")) {
        (Some(code), Some(verifier)) => Ok(Poll::Approved { code, verifier }),
        _ => Err(LoginError::Device(EndpointError::BadAnswer(
            "no authorization_code or code_verifier".to_owned(),
        ))),
    }
}

/// Steps 3–4: polls until approved (or `timeout`), then exchanges the code for an account.
pub async fn finish(
    endpoint: &OauthEndpoint,
    code: &DeviceCode,
    timeout: Duration,
) -> Result<NewAccount, LoginError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Poll::Approved {
            code: auth,
            verifier,
        } = poll_once(endpoint, code).await?
        {
            let redirect_uri = endpoint.settings.endpoint("deviceauth/callback");
            let answer = endpoint
                .exchange_code(&auth, &verifier, &redirect_uri)
                .await
                .map_err(LoginError::Exchange)?;
            return account_from_answer(answer);
        }
        if Instant::now() + code.interval >= deadline {
            return Err(LoginError::Expired(timeout.as_secs().div_ceil(60)));
        }
        actix_web::rt::time::sleep(code.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_a_string_of_seconds_with_a_floor() {
        assert_eq!(
            interval_of(&json!({"interval": "5"}), 1000),
            Duration::from_secs(5)
        );
        assert_eq!(
            interval_of(&json!({"interval": 3}), 1000),
            Duration::from_secs(3)
        );
        assert_eq!(interval_of(&json!({}), 1000), Duration::from_secs(1));
        assert_eq!(
            interval_of(&json!({"interval": "x"}), 20),
            Duration::from_millis(20)
        );
    }
}
