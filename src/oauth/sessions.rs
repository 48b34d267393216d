//! Logins started over the admin API and finished later: a device-code login runs in the
//! background while the operator polls its status; a paste login waits for the callback URL.
//! Sessions live in memory only (a restart forgets them: the operator starts again), expire
//! after `oauth.login_timeout_secs` / `oauth.device_timeout_secs`, and are bounded in number.
//! A session holds the PKCE verifier; nothing secret is ever part of a [`SessionView`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::authorize::BrowserLogin;

/// Open sessions at most; more are refused until some finish or expire.
pub const MAX_SESSIONS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SessionStatus {
    Pending,
    Completed {
        account_id: String,
        /// False when the login replaced the tokens of an account already in the pool.
        created: bool,
    },
    Failed {
        code: &'static str,
        message: String,
    },
}

/// What the admin API shows of a session.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub id: String,
    pub flow: &'static str,
    #[serde(flatten)]
    pub status: SessionStatus,
    pub expires_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
}

enum Flow {
    Device {
        verification_url: String,
        user_code: String,
    },
    Paste(Arc<BrowserLogin>),
}

struct Session {
    flow: Flow,
    status: SessionStatus,
    label: Option<String>,
    expires: Instant,
    expires_at: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("too many logins are open; finish or wait for some before starting another")]
    TooMany,
    #[error("no open login session with this id (it may have expired)")]
    NotFound,
    #[error("this login session is not a paste login")]
    WrongFlow,
    #[error("this login session has already finished")]
    Finished,
}

#[derive(Default)]
pub struct LoginSessions(Mutex<HashMap<String, Session>>);

impl LoginSessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        let mut sessions = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        sessions
    }

    fn insert(
        &self,
        flow: Flow,
        label: Option<String>,
        ttl: Duration,
    ) -> Result<String, SessionError> {
        let mut sessions = self.lock();
        if sessions.len() >= MAX_SESSIONS {
            return Err(SessionError::TooMany);
        }
        let id = format!("login_{}", uuid::Uuid::new_v4().simple());
        let expires_at = chrono::Utc::now().timestamp() + i64::try_from(ttl.as_secs()).unwrap_or(0);
        let session = Session {
            flow,
            status: SessionStatus::Pending,
            label,
            expires: Instant::now() + ttl,
            expires_at,
        };
        sessions.insert(id.clone(), session);
        Ok(id)
    }

    /// A device login whose code the operator enters at `verification_url`.
    pub fn start_device(
        &self,
        verification_url: String,
        user_code: String,
        label: Option<String>,
        ttl: Duration,
    ) -> Result<String, SessionError> {
        let flow = Flow::Device {
            verification_url,
            user_code,
        };
        self.insert(flow, label, ttl)
    }

    /// A paste login waiting for its callback URL.
    pub fn start_paste(
        &self,
        login: BrowserLogin,
        label: Option<String>,
        ttl: Duration,
    ) -> Result<String, SessionError> {
        self.insert(Flow::Paste(Arc::new(login)), label, ttl)
    }

    /// The pending paste login of `id` and its label, for completing it.
    pub fn paste_login(
        &self,
        id: &str,
    ) -> Result<(Arc<BrowserLogin>, Option<String>), SessionError> {
        let sessions = self.lock();
        let session = sessions.get(id).ok_or(SessionError::NotFound)?;
        let Flow::Paste(login) = &session.flow else {
            return Err(SessionError::WrongFlow);
        };
        if session.status != SessionStatus::Pending {
            return Err(SessionError::Finished);
        }
        Ok((Arc::clone(login), session.label.clone()))
    }

    /// The label given when the session started.
    pub fn label(&self, id: &str) -> Option<String> {
        self.lock().get(id).and_then(|s| s.label.clone())
    }

    /// Records how the session ended (kept for polling until it expires).
    pub fn finish(&self, id: &str, status: SessionStatus) {
        if let Some(session) = self.lock().get_mut(id) {
            session.status = status;
        }
    }

    pub fn view(&self, id: &str) -> Option<SessionView> {
        let sessions = self.lock();
        let session = sessions.get(id)?;
        let (flow, verification_url, user_code, authorize_url) = match &session.flow {
            Flow::Device {
                verification_url,
                user_code,
            } => (
                "device",
                Some(verification_url.clone()),
                Some(user_code.clone()),
                None,
            ),
            Flow::Paste(login) => ("paste", None, None, Some(login.authorize_url.clone())),
        };
        Some(SessionView {
            id: id.to_owned(),
            flow,
            status: session.status.clone(),
            expires_at: session.expires_at,
            verification_url,
            user_code,
            authorize_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::endpoint::OauthEndpoint;
    use crate::settings::Settings;
    use crate::upstream::outbound::Outbound;

    fn browser_login() -> BrowserLogin {
        let s = Settings::defaults().unwrap();
        let endpoint = OauthEndpoint::new(&s.oauth, &s.upstream, &Outbound::default());
        BrowserLogin::start(&endpoint, 1455)
    }

    #[test]
    fn a_paste_session_completes_once_and_shows_no_secret() {
        let sessions = LoginSessions::default();
        let id = sessions
            .start_paste(browser_login(), Some("x".into()), Duration::from_secs(60))
            .unwrap();
        let view = serde_json::to_value(sessions.view(&id).unwrap()).unwrap();
        assert_eq!(view["status"], "pending");
        assert_eq!(view["flow"], "paste");
        assert!(view["authorize_url"]
            .as_str()
            .unwrap()
            .contains("code_challenge="));
        assert!(!view.to_string().contains("verifier"));
        let (_, label) = sessions.paste_login(&id).unwrap();
        assert_eq!(label.as_deref(), Some("x"));
        sessions.finish(
            &id,
            SessionStatus::Completed {
                account_id: "a".into(),
                created: true,
            },
        );
        assert_eq!(
            sessions.paste_login(&id).unwrap_err(),
            SessionError::Finished
        );
        assert_eq!(
            sessions.paste_login("nope").unwrap_err(),
            SessionError::NotFound
        );
    }

    #[test]
    fn sessions_expire_and_are_bounded() {
        let sessions = LoginSessions::default();
        let id = sessions
            .start_device("u".into(), "C-1".into(), None, Duration::ZERO)
            .unwrap();
        assert!(sessions.view(&id).is_none(), "expired at once");
        for _ in 0..MAX_SESSIONS {
            sessions
                .start_device("u".into(), "C".into(), None, Duration::from_secs(60))
                .unwrap();
        }
        let refused = sessions.start_device("u".into(), "C".into(), None, Duration::from_secs(60));
        assert_eq!(refused.unwrap_err(), SessionError::TooMany);
        let device = sessions.start_device("u".into(), "C".into(), None, Duration::ZERO);
        assert!(device.is_err());
    }
}
