//! A scripted token refresher for the account's refresh tests: refreshes answer from a script
//! (then `Ok`) after a pause, writes of a held set from another; it counts calls, remembers what
//! each refresh was handed, and notices a refresh and a write running at once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::LocalBoxFuture;
use secrecy::{ExposeSecret, SecretString};

use super::super::{unix_now, AccountActor};
use super::{credentials, Listener};
use crate::config::PoolConfig;
use crate::ports::{RefreshAttempt, SaveAttempt, TokenRefresher};
use crate::state::refresh::RefreshPolicy;
use crate::types::{AccountCredentials, AccountId, RefreshedTokens};

#[derive(Clone, Copy)]
pub(super) enum Answer {
    Ok,
    Reject(u16, &'static str),
    Fail,
    /// The issuer rotated (refresh token `rt-<call>`), the store refused the set.
    Unsaved,
}

#[derive(Default)]
pub(super) struct ScriptedRefresher {
    calls: AtomicUsize,
    answers: Mutex<VecDeque<Answer>>,
    /// Whether each write of a held set lands (then: it lands).
    writes: Mutex<VecDeque<bool>>,
    pub(super) saves: AtomicUsize,
    /// The refresh token of the held set each refresh was handed.
    pub(super) presented: Mutex<Vec<Option<String>>>,
    pub(super) reauth: Mutex<Vec<(i64, String)>>,
    pub(super) failures: Mutex<Vec<String>>,
    pub(super) lost_at_stop: AtomicUsize,
    busy: Arc<AtomicBool>,
    overlapped: Arc<AtomicBool>,
}

impl ScriptedRefresher {
    pub(super) fn with(answers: &[Answer]) -> Arc<ScriptedRefresher> {
        Self::with_writes(answers, &[])
    }

    pub(super) fn with_writes(answers: &[Answer], writes: &[bool]) -> Arc<ScriptedRefresher> {
        let refresher = ScriptedRefresher::default();
        refresher.answers.lock().unwrap().extend(answers);
        refresher.writes.lock().unwrap().extend(writes);
        Arc::new(refresher)
    }

    pub(super) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub(super) fn saves(&self) -> usize {
        self.saves.load(Ordering::SeqCst)
    }

    /// Whether a refresh and a write (or two of either) ever ran at once.
    pub(super) fn overlapped(&self) -> bool {
        self.overlapped.load(Ordering::SeqCst)
    }

    /// Runs for 20 ms, noting an overlap with another refresh or write.
    fn pause(&self) -> impl std::future::Future<Output = ()> {
        let (busy, overlapped) = (Arc::clone(&self.busy), Arc::clone(&self.overlapped));
        async move {
            if busy.swap(true, Ordering::SeqCst) {
                overlapped.store(true, Ordering::SeqCst);
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
            busy.store(false, Ordering::SeqCst);
        }
    }
}

fn refreshed(id: &AccountId, token_version: i64) -> AccountCredentials {
    let mut c = credentials(id.as_str(), true, token_version);
    c.expires_at = Some(unix_now() + 3600);
    c
}

/// A rotated set replacing `version`: access token `token-rot-<call>`, refresh token `rt-<call>`.
fn rotated(version: i64, call: usize) -> RefreshedTokens {
    RefreshedTokens {
        replaces_version: version,
        id_token: None,
        access_token: Some(SecretString::from(format!("token-rot-{call}"))),
        refresh_token: Some(SecretString::from(format!("rt-{call}"))),
        expires_at: Some(unix_now() + 3600),
        plan: None,
        email: None,
        refreshed_at: unix_now(),
    }
}

impl TokenRefresher for ScriptedRefresher {
    fn refresh(
        &self,
        id: AccountId,
        token_version: i64,
        unsaved: Option<RefreshedTokens>,
    ) -> LocalBoxFuture<'static, RefreshAttempt> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let held = unsaved.and_then(|t| t.refresh_token.map(|r| r.expose_secret().to_owned()));
        self.presented.lock().unwrap().push(held);
        let answer = self.answers.lock().unwrap().pop_front();
        let pause = self.pause();
        Box::pin(async move {
            pause.await;
            match answer.unwrap_or(Answer::Ok) {
                Answer::Ok => RefreshAttempt::Refreshed(refreshed(&id, token_version + 1)),
                Answer::Reject(status, code) => RefreshAttempt::Rejected {
                    status,
                    code: Some(code.to_owned()),
                },
                Answer::Fail => RefreshAttempt::Failed("connection refused".to_owned()),
                Answer::Unsaved => RefreshAttempt::Unsaved {
                    tokens: rotated(token_version, call),
                    error: "database is locked".to_owned(),
                },
            }
        })
    }
    fn save(&self, id: AccountId, tokens: RefreshedTokens) -> LocalBoxFuture<'static, SaveAttempt> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        let lands = self.writes.lock().unwrap().pop_front().unwrap_or(true);
        let pause = self.pause();
        Box::pin(async move {
            pause.await;
            if !lands {
                return SaveAttempt::Failed("database or disk is full".to_owned());
            }
            let mut stored = refreshed(&id, tokens.replaces_version + 1);
            if let Some(access_token) = tokens.access_token {
                stored.access_token = access_token;
            }
            SaveAttempt::Stored(stored)
        })
    }
    fn unsaved_at_stop(&self, _: AccountId) {
        self.lost_at_stop.fetch_add(1, Ordering::SeqCst);
    }
    fn reauth_required(&self, _: AccountId, v: i64, reason: String) -> LocalBoxFuture<'static, ()> {
        self.reauth.lock().unwrap().push((v, reason));
        Box::pin(async {})
    }
    fn failed(&self, _: AccountId, _: i64, error: String) -> LocalBoxFuture<'static, ()> {
        self.failures.lock().unwrap().push(error);
        Box::pin(async {})
    }
}

pub(super) fn policy() -> RefreshPolicy {
    RefreshPolicy {
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
        ..RefreshPolicy::default()
    }
}

pub(super) fn start(
    expires_in: i64,
    refresher: &Arc<ScriptedRefresher>,
) -> (Addr<AccountActor>, Addr<Listener>) {
    start_with(expires_in, refresher, policy())
}

pub(super) fn start_with(
    expires_in: i64,
    refresher: &Arc<ScriptedRefresher>,
    policy: RefreshPolicy,
) -> (Addr<AccountActor>, Addr<Listener>) {
    let listener = Listener::default().start();
    let mut c = credentials("a", true, 1);
    c.expires_at = Some(unix_now() + expires_in);
    let refresher: Arc<dyn TokenRefresher> = refresher.clone();
    let config = PoolConfig {
        refresher,
        refresh: policy,
        ..PoolConfig::default()
    };
    let account =
        AccountActor::with_config(c, listener.clone().recipient(), Arc::new(config)).start();
    (account, listener)
}

pub(super) fn token(lease: &crate::Lease) -> String {
    lease.credentials.access_token.expose_secret().to_owned()
}

pub(super) async fn eventually(mut check: impl FnMut() -> bool) {
    for _ in 0..400 {
        if check() {
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition never held");
}
