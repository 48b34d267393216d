//! The actors' [`TokenRefresher`] port, implemented over the store and the issuer: read the
//! sealed refresh token, call the token endpoint, store the rotated set by compare-and-swap on the
//! token version, and hand the actor the new credentials.
//!
//! Once the issuer has answered, the refresh token it was sent is spent. When the store then
//! refuses the new set (locked past its busy timeout, disk full), the set goes back to the actor
//! as [`RefreshAttempt::Unsaved`]: it serves from memory, is written again
//! ([`TokenRefresher::save`]) until the write lands, and its refresh token — not the spent one in
//! the store — is what the next refresh presents. The log says so loudly, with what to do.
//!
//! Refresh tokens stay inside this module, the store and that held set. Log lines name the
//! account and what happened, never a token.

use futures_util::future::LocalBoxFuture;
use relay_actors::{
    AccountCredentials, AccountId, RefreshAttempt, RefreshedTokens, SaveAttempt, TokenRefresher,
};
use secrecy::SecretString;
use slog::{error, info, warn, Logger};

use super::auth_json::is_header_safe;
use super::claims;
use super::endpoint::{EndpointError, OauthEndpoint, TokenAnswer};
use crate::store::{Operation, Store, StoreError, TokenWrite};

/// What an operator reads when a rotated set could not be stored (each line names the account).
const UNSAVED: &str = "rotated tokens not stored: the token endpoint rotated this account's \
    tokens and the store refused them; they serve from memory and the write is retried. The \
    refresh token in the store is already spent: make the store writable again (free disk \
    space, end whatever holds its lock) and keep the relay running until 'rotated tokens stored' \
    is logged for this account, or it will need a new login";
const STILL_UNSAVED: &str =
    "rotated tokens still not stored; the write is retried (the relay must keep running)";
const SAVED: &str = "rotated tokens stored: the account's login is safe in the store again";
const LOST: &str = "rotated tokens lost: the relay stopped before the store took this account's \
    rotated tokens, and the refresh token in the store is spent; log the account in again \
    (codex-relay account login, the admin API) or import a fresh auth.json";

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
        unsaved: Option<RefreshedTokens>,
    ) -> LocalBoxFuture<'static, RefreshAttempt> {
        let store = self.store.clone();
        let endpoint = self.endpoint.clone();
        let log = self.log.new(slog::o!("account_id" => id.to_string()));
        Box::pin(async move {
            let attempt = refresh(&store, &endpoint, id.as_str(), token_version, unsaved).await;
            log_attempt(&log, &attempt);
            attempt
        })
    }

    fn save(&self, id: AccountId, tokens: RefreshedTokens) -> LocalBoxFuture<'static, SaveAttempt> {
        let store = self.store.clone();
        let log = self.log.new(slog::o!("account_id" => id.to_string()));
        Box::pin(async move {
            let saved = save(&store, id.as_str(), tokens).await;
            match &saved {
                SaveAttempt::Stored(c) => {
                    warn!(log, "{}", SAVED; "token_version" => c.token_version)
                }
                SaveAttempt::Superseded(c) => info!(log,
                    "a newer login was stored while rotated tokens waited; they are dropped";
                    "token_version" => c.token_version),
                SaveAttempt::Failed(e) => error!(log, "{}", STILL_UNSAVED; "error" => e),
                SaveAttempt::Gone => info!(log, "the account left the store during a refresh"),
            }
            saved
        })
    }

    fn unsaved_at_stop(&self, id: AccountId) {
        error!(self.log, "{}", LOST; "account_id" => id.to_string());
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
                .run(Operation::Write, move |s| {
                    s.set_reauth_required(id.as_str(), token_version, &reason)
                })
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
                .run(Operation::Write, move |s| {
                    s.record_refresh_error(id.as_str(), token_version, &error)
                })
                .await
            {
                warn!(log, "could not record a refresh failure";
                    "account_id" => account, "error" => e.to_string());
            }
        })
    }
}

/// One refresh. The version check comes first, also for a held set: its refresh token is live
/// only while the store still holds the version it replaces (a newer login makes it moot).
async fn refresh(
    store: &Store,
    endpoint: &OauthEndpoint,
    id: &str,
    token_version: i64,
    unsaved: Option<RefreshedTokens>,
) -> RefreshAttempt {
    let owned = id.to_owned();
    let stored = match store
        .run(Operation::Read, move |s| s.refresh_token(&owned))
        .await
    {
        Ok(Some(stored)) => stored,
        Ok(None) => return RefreshAttempt::Gone,
        Err(e) => return RefreshAttempt::Failed(format!("the store could not be read: {e}")),
    };
    if stored.token_version != token_version {
        // Someone stored newer tokens (a login, an import): use them, spend nothing.
        return current(store, id, RefreshAttempt::Superseded).await;
    }
    let held_refresh_token = unsaved.as_ref().and_then(|t| t.refresh_token.clone());
    let refresh_token = held_refresh_token.unwrap_or(stored.refresh_token);
    let answer = match endpoint.refresh(&refresh_token).await {
        Ok(answer) => answer,
        Err(EndpointError::Rejected { status, code, .. }) => {
            return RefreshAttempt::Rejected { status, code }
        }
        Err(e) => return RefreshAttempt::Failed(e.to_string()),
    };
    let usable = answer.access_token.as_deref().is_none_or(is_header_safe);
    let mut tokens = rotated(answer, token_version, usable);
    if let Some(older) = &unsaved {
        tokens = tokens.over(older);
    }
    match write(store, id, tokens.clone()).await {
        Ok(TokenWrite::Stored { token_version }) if !usable => {
            unusable_access_token(store, id, token_version).await
        }
        Ok(TokenWrite::Stored { .. }) => current(store, id, RefreshAttempt::Refreshed).await,
        Ok(TokenWrite::Superseded) => current(store, id, RefreshAttempt::Superseded).await,
        Ok(TokenWrite::Gone) => RefreshAttempt::Gone,
        Err(e) => {
            let mut error = format!("the refreshed tokens could not be stored: {e}");
            if !usable {
                error = format!("{UNUSABLE_ACCESS_TOKEN}; {error}");
            }
            RefreshAttempt::Unsaved { tokens, error }
        }
    }
}

/// Writes a set the store refused before, over the version it replaces.
async fn save(store: &Store, id: &str, tokens: RefreshedTokens) -> SaveAttempt {
    let read_back = |e: StoreError| {
        // Stored, but not read back: the next write finds the version moved and reads again.
        SaveAttempt::Failed(format!("the stored tokens could not be read back: {e}"))
    };
    match write(store, id, tokens).await {
        Ok(TokenWrite::Stored { .. }) => match load(store, id).await {
            Ok(Some(credentials)) => SaveAttempt::Stored(credentials),
            Ok(None) => SaveAttempt::Gone,
            Err(e) => read_back(e),
        },
        Ok(TokenWrite::Superseded) => match load(store, id).await {
            Ok(Some(credentials)) => SaveAttempt::Superseded(credentials),
            Ok(None) => SaveAttempt::Gone,
            Err(e) => read_back(e),
        },
        Ok(TokenWrite::Gone) => SaveAttempt::Gone,
        Err(e) => SaveAttempt::Failed(e.to_string()),
    }
}

const UNUSABLE_ACCESS_TOKEN: &str = "the token endpoint answered with an access token that cannot \
    be sent in a header; it was not stored and the refresh will be retried";

/// The issuer answered with an access token that cannot be sent as a header value. The rotated
/// refresh token is already stored (the old one is spent), the unusable access token is not (the
/// previous one keeps serving until it expires); the failure is recorded on the new token set and
/// reported as transient, so the next refresh, with the new refresh token, is retried after a
/// backoff pause.
async fn unusable_access_token(store: &Store, id: &str, token_version: i64) -> RefreshAttempt {
    let owned = id.to_owned();
    let recorded = store
        .run(Operation::Write, move |s| {
            s.record_refresh_error(&owned, token_version, UNUSABLE_ACCESS_TOKEN)
        })
        .await;
    match recorded {
        Ok(()) => RefreshAttempt::Failed(UNUSABLE_ACCESS_TOKEN.to_owned()),
        Err(e) => RefreshAttempt::Failed(format!("{UNUSABLE_ACCESS_TOKEN} (not recorded: {e})")),
    }
}

/// The answer as a set replacing `token_version`: the new access token's `exp` becomes the
/// expiry, the new id token's plan and email replace the stored ones. An access token that is not
/// `usable` is left out: the stored one and its expiry stay.
fn rotated(mut answer: TokenAnswer, token_version: i64, usable: bool) -> RefreshedTokens {
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
    RefreshedTokens {
        replaces_version: token_version,
        id_token: answer.id_token.map(SecretString::from),
        access_token: answer.access_token.map(SecretString::from),
        refresh_token: answer.refresh_token.map(SecretString::from),
        expires_at: access.expires_at,
        plan: identity.plan.or(access.plan),
        email: identity.email,
        refreshed_at: chrono::Utc::now().timestamp(),
    }
}

async fn write(store: &Store, id: &str, tokens: RefreshedTokens) -> Result<TokenWrite, StoreError> {
    let id = id.to_owned();
    store
        .run(Operation::Write, move |s| s.store_refreshed(&id, &tokens))
        .await
}

async fn load(store: &Store, id: &str) -> Result<Option<AccountCredentials>, StoreError> {
    let id = id.to_owned();
    store
        .run(Operation::Read, move |s| s.load_credentials(&id))
        .await
}

async fn current(
    store: &Store,
    id: &str,
    wrap: fn(AccountCredentials) -> RefreshAttempt,
) -> RefreshAttempt {
    match load(store, id).await {
        Ok(Some(credentials)) => wrap(credentials),
        Ok(None) => RefreshAttempt::Gone,
        Err(e) => RefreshAttempt::Failed(format!("the store could not be read: {e}")),
    }
}

fn log_attempt(log: &Logger, attempt: &RefreshAttempt) {
    match attempt {
        RefreshAttempt::Refreshed(c) => info!(log, "refreshed the account's tokens";
            "token_version" => c.token_version, "expires_at" => c.expires_at),
        RefreshAttempt::Unsaved { error, .. } => error!(log, "{}", UNSAVED; "error" => error),
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
