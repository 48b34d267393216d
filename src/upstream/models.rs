//! `GET {base}/models?client_version=X`, as the Codex CLI fetches it (answered with
//! `{"models": [ModelInfo…]}`): the upstream's model catalog as one account sees it (the catalog
//! depends on the account's plan).

use relay_actors::AccountCredentials;
use secrecy::ExposeSecret;
use serde_json::Value;

use super::UpstreamClient;

/// Largest catalog body the relay reads.
const CATALOG_LIMIT: usize = 4 * 1024 * 1024;

/// Why a catalog could not be fetched (never carries a token or a body).
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the upstream could not be reached: {0}")]
    Transport(String),
    #[error("the upstream answered {0}")]
    Status(u16),
    #[error("the upstream's catalog is not {{\"models\": [...]}}")]
    Shape,
}

impl UpstreamClient {
    /// The `ModelInfo` entries the upstream lists for `account`.
    pub async fn fetch_models(
        &self,
        account: &AccountCredentials,
        client_version: &str,
    ) -> Result<Vec<Value>, CatalogError> {
        let base = self.responses_url.trim_end_matches("/responses");
        // The call is a stream of its connection until the body is read, at the end of this function.
        let slot = self.connections.take();
        let mut request = slot
            .connection()
            .http
            .get(format!("{base}/models"))
            .query(&[("client_version", client_version)])
            .map_err(|_| CatalogError::Shape)?
            .insert_header((
                "authorization",
                format!("Bearer {}", account.access_token.expose_secret()),
            ))
            .insert_header(("chatgpt-account-id", account.chatgpt_account_id.as_str()))
            .insert_header(("accept", "application/json"))
            .insert_header(("originator", self.originator.as_str()))
            .insert_header(("user-agent", self.user_agent.as_str()));
        if account.is_fedramp {
            request = request.insert_header(("x-openai-fedramp", "true"));
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| CatalogError::Transport(e.to_string()))?;
        if !response.status().is_success() {
            return Err(CatalogError::Status(response.status().as_u16()));
        }
        let body: Value = response
            .json()
            .limit(CATALOG_LIMIT)
            .await
            .map_err(|_| CatalogError::Shape)?;
        match body.get("models") {
            Some(Value::Array(models)) => Ok(models.clone()),
            _ => Err(CatalogError::Shape),
        }
    }
}
