//! Import of `auth.json` exactly as the Codex CLI writes it (`~/.codex/auth.json`: `auth_mode`,
//! `OPENAI_API_KEY`, `tokens` with the id, access and refresh tokens and the account id, and
//! `last_refresh`).
//!
//! Only ChatGPT logins can serve the Codex backend: an API-key-only file is refused, and so is a
//! file whose tokens are missing or are not JWTs. The file's `OPENAI_API_KEY` is never read.

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::error::Category;

use super::claims::{self, ClaimsError};
use crate::domain::TokenSet;
use crate::store::NewAccount;

#[derive(Debug, thiserror::Error)]
pub enum AuthJsonError {
    #[error("this is not an auth.json file: {0}")]
    NotJson(String),
    #[error(
        "this auth.json holds an API-key login (auth_mode \"{0}\"), not a ChatGPT login; \
         sign in with `codex login` (ChatGPT) and import that file"
    )]
    ApiKeyOnly(String),
    #[error("this auth.json has no ChatGPT tokens; sign in with `codex login` (ChatGPT) and import that file")]
    NoTokens,
    #[error("this auth.json's tokens.{0} is missing or empty")]
    MissingToken(&'static str),
    #[error("this auth.json is malformed: {0}")]
    BadToken(#[from] ClaimsError),
    #[error("this auth.json names no ChatGPT account id (neither tokens.account_id nor the id token's claim)")]
    NoAccountId,
    #[error("this auth.json's {0} contains characters that cannot be sent in an HTTP header")]
    NotHeaderSafe(&'static str),
}

#[derive(Deserialize)]
struct AuthDotJson {
    auth_mode: Option<String>,
    tokens: Option<RawTokens>,
    last_refresh: Option<String>,
}

#[derive(Deserialize)]
struct RawTokens {
    id_token: Option<String>,
    access_token: Option<String>,
    refresh_token: Option<String>,
    account_id: Option<String>,
}

/// What serde found wrong, without the text its message quotes: a type error quotes the value it
/// met, and in an auth.json that value may be a token (`"tokens": "rt_…"`), which would then
/// reach the CLI's output and the admin API's error body.
fn not_json(error: &serde_json::Error) -> AuthJsonError {
    let what = match error.classify() {
        Category::Data => "its JSON does not have auth.json's fields and types",
        Category::Syntax | Category::Eof | Category::Io => "it is not valid JSON",
    };
    let (line, column) = (error.line(), error.column());
    AuthJsonError::NotJson(format!("{what} (line {line}, column {column})"))
}

/// Parses an auth.json document into an account ready to be stored.
pub fn parse(text: &str) -> Result<NewAccount, AuthJsonError> {
    let file: AuthDotJson = serde_json::from_str(text).map_err(|e| not_json(&e))?;
    if let Some(mode) = file.auth_mode.as_deref() {
        if !matches!(mode, "chatgpt" | "chatgptAuthTokens") {
            return Err(AuthJsonError::ApiKeyOnly(mode.to_owned()));
        }
    }
    let tokens = file.tokens.ok_or(AuthJsonError::NoTokens)?;
    let last_refresh = file
        .last_refresh
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp());
    from_tokens(
        tokens.id_token,
        tokens.access_token,
        tokens.refresh_token,
        tokens.account_id,
        last_refresh,
    )
}

/// An account from a token set (of an auth.json or a login): all three tokens required, claims
/// read from the JWTs, the ChatGPT account id from `account_id` or the id token.
pub fn from_tokens(
    id_token: Option<String>,
    access_token: Option<String>,
    refresh_token: Option<String>,
    account_id: Option<String>,
    last_refresh: Option<i64>,
) -> Result<NewAccount, AuthJsonError> {
    let id_token = required(id_token, "id_token")?;
    let access_token = required(access_token, "access_token")?;
    let refresh_token = required(refresh_token, "refresh_token")?;
    let identity = claims::parse(&id_token, "id token")?;
    let access = claims::parse(&access_token, "access token")?;
    let chatgpt_account_id = account_id
        .filter(|id| !id.is_empty())
        .or(identity.chatgpt_account_id)
        .ok_or(AuthJsonError::NoAccountId)?;
    header_safe(&chatgpt_account_id, "ChatGPT account id")?;
    header_safe(&access_token, "tokens.access_token")?;
    Ok(NewAccount {
        chatgpt_account_id,
        label: None,
        email: identity.email,
        plan: identity.plan.or(access.plan),
        is_fedramp: identity.is_fedramp,
        token_expires_at: access.expires_at,
        last_refresh,
        tokens: TokenSet {
            id_token: SecretString::from(id_token),
            access_token: SecretString::from(access_token),
            refresh_token: SecretString::from(refresh_token),
        },
    })
}

/// The account id and access token travel as header values upstream: visible ASCII only.
fn header_safe(value: &str, name: &'static str) -> Result<(), AuthJsonError> {
    is_header_safe(value)
        .then_some(())
        .ok_or(AuthJsonError::NotHeaderSafe(name))
}

/// Whether `value` may be sent as a header value upstream (also checked for refreshed tokens).
pub(crate) fn is_header_safe(value: &str) -> bool {
    value.len() <= 16 * 1024 && value.bytes().all(|b| b.is_ascii_graphic())
}

fn required(value: Option<String>, name: &'static str) -> Result<String, AuthJsonError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or(AuthJsonError::MissingToken(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::json;

    fn jwt(payload: serde_json::Value) -> String {
        format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(payload.to_string()))
    }

    fn auth_file() -> serde_json::Value {
        let auth = json!({"chatgpt_plan_type": "plus", "chatgpt_account_id": "acct-9"});
        json!({
            "auth_mode": "chatgpt",
            "OPENAI_API_KEY": null,
            "tokens": {
                "id_token": jwt(json!({"email": "a@example.com", "https://api.openai.com/auth": auth})),
                "access_token": jwt(json!({"exp": 1_900_000_000, "https://api.openai.com/auth": auth})),
                "refresh_token": "rt_abc",
                "account_id": "acct-9"
            },
            "last_refresh": "2026-04-24T10:11:12.345678Z"
        })
    }

    #[test]
    fn a_chatgpt_login_is_read_with_its_claims() {
        let account = parse(&auth_file().to_string()).unwrap();
        assert_eq!(account.chatgpt_account_id, "acct-9");
        assert_eq!(account.email.as_deref(), Some("a@example.com"));
        assert_eq!(account.plan.as_deref(), Some("plus"));
        assert_eq!(account.token_expires_at, Some(1_900_000_000));
        assert!(account.last_refresh.is_some());
    }

    #[test]
    fn an_old_file_without_auth_mode_is_read_from_its_tokens() {
        let mut file = auth_file();
        file.as_object_mut().unwrap().remove("auth_mode");
        file["OPENAI_API_KEY"] = json!("sk-exchanged");
        assert!(parse(&file.to_string()).is_ok());
    }

    #[test]
    fn an_api_key_login_is_refused() {
        let text = json!({"auth_mode": "apikey", "OPENAI_API_KEY": "sk-x"}).to_string();
        assert!(matches!(parse(&text), Err(AuthJsonError::ApiKeyOnly(_))));
        let text = json!({"OPENAI_API_KEY": "sk-x"}).to_string();
        assert!(matches!(parse(&text), Err(AuthJsonError::NoTokens)));
    }

    #[test]
    fn a_refusal_never_quotes_what_the_file_holds() {
        let secret = "rt_SEEDEDsecretREFRESHtoken0123456789";
        for text in [
            json!({"tokens": secret}).to_string(),
            json!({"tokens": {"refresh_token": [secret]}}).to_string(),
            json!({"auth_mode": "chatgpt", "last_refresh": {"at": secret}}).to_string(),
            format!("{{\"tokens\": {secret}}}"),
        ] {
            let Err(error) = parse(&text) else {
                panic!("accepted {text}")
            };
            let error = error.to_string();
            assert!(!error.contains("SEEDED"), "{error}");
            assert!(error.contains("line 1"), "{error}");
        }
    }

    #[test]
    fn malformed_files_are_refused_with_the_reason() {
        assert!(matches!(parse("{"), Err(AuthJsonError::NotJson(_))));
        let mut file = auth_file();
        file["tokens"]["refresh_token"] = json!("");
        assert!(matches!(
            parse(&file.to_string()),
            Err(AuthJsonError::MissingToken("refresh_token"))
        ));
        let mut file = auth_file();
        file["tokens"]["account_id"] = json!("acct 9\n");
        assert!(matches!(
            parse(&file.to_string()),
            Err(AuthJsonError::NotHeaderSafe(_))
        ));
        let mut file = auth_file();
        file["tokens"]["access_token"] = json!("not-a-jwt");
        assert!(matches!(
            parse(&file.to_string()),
            Err(AuthJsonError::BadToken(_))
        ));
    }
}
