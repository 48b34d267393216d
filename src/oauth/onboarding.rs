//! Logins driven over the admin API: start a device-code login (it finishes in the background
//! while the operator polls), or start a paste login (returns the authorize URL) and complete it
//! with the pasted callback URL. Both end like an import, and the router is told at once.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use relay_actors::{RouterActor, SyncNow};
use slog::{info, warn, Logger};

use super::authorize::BrowserLogin;
use super::device;
use super::endpoint::OauthEndpoint;
use super::login::LoginError;
use super::sessions::{LoginSessions, SessionError, SessionStatus, SessionView};
use crate::store::{ImportOutcome, NewAccount, Operation, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum OnboardingError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Login(#[from] LoginError),
    #[error("the account could not be stored: {0}")]
    Store(#[from] StoreError),
}

/// Everything a login over the admin API needs; one per server, shared by the admin workers.
pub struct Onboarding {
    sessions: LoginSessions,
    endpoint: OauthEndpoint,
    store: Store,
    router: Addr<RouterActor>,
    log: Logger,
}

impl Onboarding {
    pub fn new(
        endpoint: OauthEndpoint,
        store: Store,
        router: Addr<RouterActor>,
        log: Logger,
    ) -> Self {
        Onboarding {
            sessions: LoginSessions::default(),
            endpoint,
            store,
            router,
            log,
        }
    }

    /// Asks the issuer for a user code and polls for its approval in the background.
    pub async fn start_device(
        self: &Arc<Self>,
        label: Option<String>,
    ) -> Result<SessionView, OnboardingError> {
        let code = device::request_code(&self.endpoint).await?;
        let ttl = Duration::from_secs(self.endpoint.settings.device_timeout_secs);
        let id = self.sessions.start_device(
            code.verification_url.clone(),
            code.user_code.clone(),
            label,
            ttl,
        )?;
        let this = Arc::clone(self);
        let session = id.clone();
        actix_web::rt::spawn(async move {
            let result = device::finish(&this.endpoint, &code, ttl).await;
            this.conclude(&session, result).await;
        });
        self.view(&id)
    }

    /// A paste login: the operator opens the authorize URL and sends back the callback URL.
    pub fn start_paste(&self, label: Option<String>) -> Result<SessionView, OnboardingError> {
        let login = BrowserLogin::start(&self.endpoint, self.endpoint.settings.callback_port);
        let ttl = Duration::from_secs(self.endpoint.settings.login_timeout_secs);
        let id = self.sessions.start_paste(login, label, ttl)?;
        self.view(&id)
    }

    /// Completes a paste login. A URL that is not this login's callback (wrong state, not a
    /// callback) leaves the session open for another try; any other failure ends the session and
    /// is returned, as the operator is waiting for this answer.
    pub async fn complete_paste(
        &self,
        id: &str,
        callback_url: &str,
    ) -> Result<SessionView, OnboardingError> {
        let (login, _) = self.sessions.paste_login(id)?;
        match login.complete(&self.endpoint, callback_url).await {
            Err(error @ (LoginError::StateMismatch | LoginError::NotACallback)) => {
                Err(error.into())
            }
            Err(error) => {
                warn!(self.log, "a login over the admin API failed"; "error" => error.to_string());
                self.sessions
                    .finish(id, failed(error.code(), error.to_string()));
                Err(error.into())
            }
            Ok(account) => {
                // The operator waits for this answer: a store that failed is the relay's error
                // (500), not a login that failed.
                self.store_login(id, account).await?;
                self.view(id)
            }
        }
    }

    pub fn status(&self, id: &str) -> Result<SessionView, OnboardingError> {
        self.view(id)
    }

    fn view(&self, id: &str) -> Result<SessionView, OnboardingError> {
        Ok(self.sessions.view(id).ok_or(SessionError::NotFound)?)
    }

    /// Stores the account (like an import) or records why the login failed.
    async fn conclude(&self, id: &str, result: Result<NewAccount, LoginError>) {
        match result {
            // A store failure is logged and ends the session as failed; nobody else to tell.
            Ok(account) => drop(self.store_login(id, account).await),
            Err(error) => {
                warn!(self.log, "a login over the admin API failed"; "error" => error.to_string());
                self.sessions
                    .finish(id, failed(error.code(), error.to_string()));
            }
        }
    }

    /// Stores a logged-in account like an import and ends its session: completed, or failed
    /// with `store_failed` (then the store's error is returned as well).
    async fn store_login(&self, id: &str, mut account: NewAccount) -> Result<(), StoreError> {
        account.label = self.sessions.label(id);
        match self
            .store
            .run(Operation::Write, move |s| s.import_account(&account))
            .await
        {
            Ok((account_id, outcome)) => {
                let created = outcome == ImportOutcome::Created;
                info!(self.log, "account logged in over the admin API";
                    "account_id" => &account_id, "created" => created);
                self.router.do_send(SyncNow);
                self.sessions.finish(
                    id,
                    SessionStatus::Completed {
                        account_id,
                        created,
                    },
                );
                Ok(())
            }
            Err(e) => {
                warn!(self.log, "a login over the admin API could not be stored";
                    "error" => e.to_string());
                self.sessions
                    .finish(id, failed("store_failed", e.to_string()));
                Err(e)
            }
        }
    }
}

fn failed(code: &'static str, message: String) -> SessionStatus {
    SessionStatus::Failed { code, message }
}
