//! Browser logins without a browser on the relay's host, with the Codex CLI's authorize URL and
//! code exchange: the authorize URL the operator opens anywhere, and the callback URL
//! (`http://localhost:1455/auth/callback?code=…&state=…`) that comes back — pasted by the
//! operator, or received by the local listener. (The Codex CLI itself has no pasted-URL login.)

use secrecy::SecretString;
use url::Url;

use super::endpoint::OauthEndpoint;
use super::login::{account_from_answer, LoginError};
use super::pkce::{random_state, same, Pkce};
use crate::store::NewAccount;

const SCOPE: &str = "openid profile email offline_access api.connectors.read api.connectors.invoke";

/// One browser login: its PKCE pair, `state`, redirect URI and authorize URL.
pub struct BrowserLogin {
    pkce: Pkce,
    state: String,
    redirect_uri: String,
    pub authorize_url: String,
}

impl BrowserLogin {
    /// A new login whose callback is `http://localhost:{port}/auth/callback`.
    pub fn start(endpoint: &OauthEndpoint, port: u16) -> BrowserLogin {
        let pkce = Pkce::generate();
        let state = random_state();
        let redirect_uri = format!("http://localhost:{port}/auth/callback");
        let authorize_url = authorize_url(endpoint, &redirect_uri, &pkce.challenge, &state);
        BrowserLogin {
            pkce,
            state,
            redirect_uri,
            authorize_url,
        }
    }

    /// Checks the callback URL (state, error) and exchanges its code for an account.
    pub async fn complete(
        &self,
        endpoint: &OauthEndpoint,
        callback_url: &str,
    ) -> Result<NewAccount, LoginError> {
        let code = read_callback(callback_url, &self.state)?;
        let answer = endpoint
            .exchange_code(&code, &self.pkce.verifier, &self.redirect_uri)
            .await
            .map_err(LoginError::Exchange)?;
        account_from_answer(answer)
    }
}

/// `{issuer}/oauth/authorize?…` with the Codex CLI's parameters, in its order.
fn authorize_url(
    endpoint: &OauthEndpoint,
    redirect_uri: &str,
    challenge: &str,
    state: &str,
) -> String {
    let base = endpoint.settings.endpoint("oauth/authorize");
    let mut url = Url::parse(&base).unwrap_or_else(|_| endpoint.settings.issuer.clone());
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &endpoint.settings.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", SCOPE)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("id_token_add_organizations", "true")
        .append_pair("codex_cli_simplified_flow", "true")
        .append_pair("state", state)
        .append_pair("originator", endpoint.originator());
    url.into()
}

/// The code of a callback URL (or of its query alone), after checking `state` and `error`.
pub fn read_callback(text: &str, expected_state: &str) -> Result<SecretString, LoginError> {
    let text = text.trim();
    let query = match Url::parse(text) {
        Ok(url) => url.query().unwrap_or_default().to_owned(),
        Err(_) => text.trim_start_matches('?').to_owned(),
    };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    if let Some(error) = get("error") {
        return Err(LoginError::from_callback_error(
            error,
            get("error_description"),
        ));
    }
    let (Some(code), Some(state)) = (get("code"), get("state")) else {
        return Err(LoginError::NotACallback);
    };
    if !same(state, expected_state) {
        return Err(LoginError::StateMismatch);
    }
    Ok(SecretString::from(code.to_owned()))
}

impl std::fmt::Debug for BrowserLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserLogin")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn a_pasted_callback_gives_its_code_once_state_matches() {
        let url = "http://localhost:1455/auth/callback?code=ac_1&scope=x&state=s1";
        assert_eq!(read_callback(url, "s1").unwrap().expose_secret(), "ac_1");
        assert_eq!(
            read_callback(" ?code=ac_2&state=s1 \n", "s1")
                .unwrap()
                .expose_secret(),
            "ac_2"
        );
        assert!(matches!(
            read_callback(url, "s2"),
            Err(LoginError::StateMismatch)
        ));
        assert!(matches!(
            read_callback("hello", "s1"),
            Err(LoginError::NotACallback)
        ));
    }

    #[test]
    fn errors_in_the_callback_are_explained() {
        let denied = "http://localhost:1455/auth/callback?error=access_denied&error_description=User+cancelled&state=s";
        assert!(matches!(
            read_callback(denied, "s"),
            Err(LoginError::Denied(_))
        ));
        let entitlement = "http://localhost:1455/auth/callback?error=access_denied&error_description=missing_codex_entitlement&state=s";
        let err = read_callback(entitlement, "s").unwrap_err();
        assert!(
            err.to_string()
                .contains("Codex is not enabled for your workspace"),
            "{err}"
        );
    }
}
