//! The actors' [`TokenRefresher`] port, implemented over the store and the issuer: read the
//! sealed refresh token, call the token endpoint, store the rotated set by compare-and-swap on
//! the token version (durable before it is served), and hand the actor the new credentials.
//!
//! The refresh token stays inside this module and the store. Log lines name the account and
//! what happened, never a token.

use futures_util::future::LocalBoxFuture;
use relay_actors::{AccountCredentials, AccountId, RefreshAttempt, TokenRefresher};
use secrecy::SecretString;
use slog::{info, warn, Logger};

use super::auth_json::is_header_safe;
use super::claims;
use super::endpoint::{EndpointError, OauthEndpoint, TokenAnswer};
use crate::store::{RefreshedTokens, Store, StoreError, TokenWrite};

pub struct StoreTokenRefresher {
    pub store: Store,
    pub endpoint: OauthEndpoint,
    pub log: Logger,
}

impl TokenRefresher for StoreTokenRefresher {
    fn refresh(
        &self,
        id: AccountId,
        token_version: i64,
    ) -> LocalBoxFuture<'static, RefreshAttempt> {
        let store = self.store.clone();
        let endpoint = self.endpoint.clone();
        let log = self.log.new(slog::o!("account_id" => id.to_string()));
        Box::pin(async move {
            let attempt = refresh(&store, &endpoint, id.as_str(), token_version).await;
            log_attempt(&log, &attempt);
            attempt
        })
    }

    fn reauth_required(
        &self,
        id: AccountId,
        token_version: i64,
        reason: String,
    ) -> LocalBoxFuture<'static, ()> {
        let store = self.store.clone();
        let log = self.log.clone();
        Box::pin(async move {
            warn!(log, "account needs a new login; it is out of rotation";
                "account_id" => id.to_string(), "reason" => &reason);
            let account = id.to_string();
            let stored = store
                .run(move |s| s.set_reauth_required(id.as_str(), token_version, &reason))
                .await;
            if let Err(e) = stored {
                warn!(log, "could not record that the account needs a new login";
                    "account_id" => account, "error" => e.to_string());
            }
        })
    }

    fn failed(
        &self,
        id: AccountId,
        token_version: i64,
        error: String,
    ) -> LocalBoxFuture<'static, ()> {
        let store = self.store.clone();
        let log = self.log.clone();
        Box::pin(async move {
            let account = id.to_string();
            if let Err(e) = store
                .run(move |s| s.record_refresh_error(id.as_str(), token_version, &error))
                .await
            {
                warn!(log, "could not record a refresh failure";
                    "account_id" => account, "error" => e.to_string());
            }
        })
    }
}

async fn refresh(
    store: &Store,
    endpoint: &OauthEndpoint,
    id: &str,
    token_version: i64,
) -> RefreshAttempt {
    let owned = id.to_owned();
    let stored = match store.run(move |s| s.refresh_token(&owned)).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return RefreshAttempt::Gone,
        Err(e) => return RefreshAttempt::Failed(format!("the store could not be read: {e}")),
    };
    if stored.token_version != token_version {
        // Someone stored newer tokens (a login, an import): use them, spend nothing.
        return current(store, id, RefreshAttempt::Superseded).await;
    }
    let answer = match endpoint.refresh(&stored.refresh_token).await {
        Ok(answer) => answer,
        Err(EndpointError::Rejected { status, code, .. }) => {
            return RefreshAttempt::Rejected { status, code }
        }
        Err(e) => return RefreshAttempt::Failed(e.to_string()),
    };
    let usable = answer.access_token.as_deref().is_none_or(is_header_safe);
    match persist(store, id, token_version, answer, usable).await {
        Ok(TokenWrite::Stored { token_version }) if !usable => {
            unusable_access_token(store, id, token_version).await
        }
        Ok(TokenWrite::Stored { .. }) => current(store, id, RefreshAttempt::Refreshed).await,
        Ok(TokenWrite::Superseded) => current(store, id, RefreshAttempt::Superseded).await,
        Ok(TokenWrite::Gone) => RefreshAttempt::Gone,
        Err(e) => RefreshAttempt::Failed(format!("the refreshed tokens could not be stored: {e}")),
    }
}

/// The issuer answered with an access token that cannot be sent as a header value. The rotated
/// refresh token is already stored (the old one is spent), the unusable access token is not (the
/// previous one keeps serving until it expires); the failure is recorded on the new token set and
/// reported as transient, so the next refresh, with the new refresh token, is retried after a
/// backoff pause.
async fn unusable_access_token(store: &Store, id: &str, token_version: i64) -> RefreshAttempt {
    let error = "the token endpoint answered with an access token that cannot be sent in a \
                 header; it was not stored and the refresh will be retried";
    let owned = id.to_owned();
    let recorded = store
        .run(move |s| s.record_refresh_error(&owned, token_version, error))
        .await;
    match recorded {
        Ok(()) => RefreshAttempt::Failed(error.to_owned()),
        Err(e) => RefreshAttempt::Failed(format!("{error} (not recorded: {e})")),
    }
}

/// Stores the answer by compare-and-swap; the new access token's `exp` becomes the expiry, the
/// new id token's plan and email replace the stored ones. An access token that is not `usable`
/// is left out: the stored one and its expiry stay.
async fn persist(
    store: &Store,
    id: &str,
    token_version: i64,
    mut answer: TokenAnswer,
    usable: bool,
) -> Result<TokenWrite, StoreError> {
    if !usable {
        answer.access_token = None;
    }
    let claims_of = |token: &Option<String>, what| {
        token
            .as_deref()
            .and_then(|t| claims::parse(t, what).ok())
            .unwrap_or_default()
    };
    let access = claims_of(&answer.access_token, "access token");
    let identity = claims_of(&answer.id_token, "id token");
    let tokens = RefreshedTokens {
        id_token: answer.id_token.map(SecretString::from),
        access_token: answer.access_token.map(SecretString::from),
        refresh_token: answer.refresh_token.map(SecretString::from),
        expires_at: access.expires_at,
        plan: identity.plan.or(access.plan),
        email: identity.email,
    };
    let id = id.to_owned();
    store
        .run(move |s| s.store_refreshed(&id, token_version, &tokens))
        .await
}

async fn current(
    store: &Store,
    id: &str,
    wrap: fn(AccountCredentials) -> RefreshAttempt,
) -> RefreshAttempt {
    let id = id.to_owned();
    match store.run(move |s| s.load_credentials(&id)).await {
        Ok(Some(credentials)) => wrap(credentials),
        Ok(None) => RefreshAttempt::Gone,
        Err(e) => RefreshAttempt::Failed(format!("the store could not be read: {e}")),
    }
}

fn log_attempt(log: &Logger, attempt: &RefreshAttempt) {
    match attempt {
        RefreshAttempt::Refreshed(c) => info!(log, "refreshed the account's tokens";
            "token_version" => c.token_version, "expires_at" => c.expires_at),
        RefreshAttempt::Superseded(c) => info!(log, "newer tokens were already stored";
            "token_version" => c.token_version),
        RefreshAttempt::Rejected { status, code } => {
            warn!(log, "the token endpoint refused a refresh";
            "status" => status, "code" => code.as_deref())
        }
        RefreshAttempt::Failed(error) => warn!(log, "a token refresh failed; it will be retried";
            "error" => error),
        RefreshAttempt::Gone => info!(log, "the account left the store during a refresh"),
    }
}
