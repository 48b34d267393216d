//! The claims codex-relay reads from ChatGPT JWTs, as the Codex CLI reads them: the payload is
//! base64url JSON; the e-mail is `email`, else the profile claim's; plan, account id and FedRAMP
//! flag are in the `https://api.openai.com/auth` claim. The signature is not verified — the
//! tokens come from the operator's own login, and the upstream verifies them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClaimsError {
    #[error("the {0} is not a JWT (expected three dot-separated parts)")]
    NotAJwt(&'static str),
    #[error("the {0}'s payload is not base64url JSON")]
    BadPayload(&'static str),
}

/// What the relay needs from the id token and the access token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatGptClaims {
    pub email: Option<String>,
    pub plan: Option<String>,
    pub chatgpt_account_id: Option<String>,
    pub is_fedramp: bool,
    /// `exp`, unix seconds.
    pub expires_at: Option<i64>,
}

#[derive(Deserialize, Default)]
struct RawClaims {
    email: Option<String>,
    exp: Option<i64>,
    #[serde(rename = "https://api.openai.com/profile", default)]
    profile: Option<RawProfile>,
    #[serde(rename = "https://api.openai.com/auth", default)]
    auth: Option<RawAuth>,
}

#[derive(Deserialize, Default)]
struct RawProfile {
    email: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawAuth {
    chatgpt_plan_type: Option<String>,
    chatgpt_account_id: Option<String>,
    #[serde(default)]
    chatgpt_account_is_fedramp: bool,
}

/// Decodes the payload of `jwt`; `what` names the token in error messages.
pub fn parse(jwt: &str, what: &'static str) -> Result<ChatGptClaims, ClaimsError> {
    let mut parts = jwt.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ClaimsError::NotAJwt(what));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| ClaimsError::BadPayload(what))?;
    let raw: RawClaims =
        serde_json::from_slice(&bytes).map_err(|_| ClaimsError::BadPayload(what))?;
    let auth = raw.auth.unwrap_or_default();
    Ok(ChatGptClaims {
        email: raw.email.or(raw.profile.and_then(|p| p.email)),
        plan: auth.chatgpt_plan_type,
        chatgpt_account_id: auth.chatgpt_account_id,
        is_fedramp: auth.chatgpt_account_is_fedramp,
        expires_at: raw.exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTH_CLAIM: &str = "https://api.openai.com/auth";
    const PROFILE_CLAIM: &str = "https://api.openai.com/profile";

    fn jwt(payload: serde_json::Value) -> String {
        format!(
            "e30.{}.sig",
            URL_SAFE_NO_PAD.encode(payload.to_string().as_bytes())
        )
    }

    #[test]
    fn reads_account_plan_email_and_expiry() {
        let token = jwt(serde_json::json!({
            "email": "dev@example.com",
            "exp": 1_777_777_777,
            AUTH_CLAIM: {"chatgpt_plan_type": "pro", "chatgpt_account_id": "acct-1",
                         "chatgpt_account_is_fedramp": true}
        }));
        let claims = parse(&token, "id token").unwrap();
        assert_eq!(claims.email.as_deref(), Some("dev@example.com"));
        assert_eq!(claims.plan.as_deref(), Some("pro"));
        assert_eq!(claims.chatgpt_account_id.as_deref(), Some("acct-1"));
        assert!(claims.is_fedramp);
        assert_eq!(claims.expires_at, Some(1_777_777_777));
    }

    #[test]
    fn email_falls_back_to_the_profile_claim() {
        let token = jwt(serde_json::json!({PROFILE_CLAIM: {"email": "p@example.com"}}));
        let claims = parse(&token, "id token").unwrap();
        assert_eq!(claims.email.as_deref(), Some("p@example.com"));
    }

    #[test]
    fn malformed_tokens_are_named() {
        assert_eq!(
            parse("abc", "id token"),
            Err(ClaimsError::NotAJwt("id token"))
        );
        assert_eq!(
            parse("a.!!!.c", "access token"),
            Err(ClaimsError::BadPayload("access token"))
        );
    }
}
