//! Per-account scripting, keyed by the `ChatGPT-Account-ID` header: each account of a pool can
//! be told to answer differently — a queue of one-off answers, a standing answer (an account that
//! is down or capped answers so until told otherwise; a standing HTTP error also answers
//! `GET /models`, so health probes see it), and the rate-limit percentages of its headers.
//! Answers for an account come before the global queue of [`MockState::push_scripted`].

use std::collections::{HashMap, VecDeque};

use super::{lock, MockState, Scripted};

/// How the mock answers one ChatGPT account.
#[derive(Clone, Debug, Default)]
pub(super) struct AccountScript {
    queue: VecDeque<Scripted>,
    standing: Option<Scripted>,
    used_percent: Option<(f64, f64)>,
}

/// The scripts of every account that has one.
pub(super) type AccountScripts = HashMap<String, AccountScript>;

impl MockState {
    /// Queues an answer for the next `POST /responses` or WebSocket turn of `account` (first
    /// in, first out).
    pub fn push_scripted_for(&self, account: &str, answer: Scripted) {
        lock(&self.accounts)
            .entry(account.to_owned())
            .or_default()
            .queue
            .push_back(answer);
    }

    /// Answers every `POST /responses` of `account` with `answer` (after its queue) until it is
    /// set to `None`. A standing [`Scripted::Status`] also answers `GET /models` and the
    /// WebSocket handshake.
    pub fn set_standing_for(&self, account: &str, answer: Option<Scripted>) {
        lock(&self.accounts)
            .entry(account.to_owned())
            .or_default()
            .standing = answer;
    }

    /// The used percents `account`'s answers report in `x-codex-primary-used-percent` and
    /// `x-codex-secondary-used-percent`.
    pub fn set_used_percent_for(&self, account: &str, primary: f64, secondary: f64) {
        lock(&self.accounts)
            .entry(account.to_owned())
            .or_default()
            .used_percent = Some((primary, secondary));
    }

    /// `POST /responses` requests the mock received for `account`.
    pub fn responses_for(&self, account: &str) -> usize {
        self.count(account, "POST", "/responses")
    }

    /// `GET /models` requests the mock received for `account` (health probes).
    pub fn models_requests_for(&self, account: &str) -> usize {
        self.count(account, "GET", "/models")
    }

    fn count(&self, account: &str, method: &str, path: &str) -> usize {
        lock(&self.requests)
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .filter(|r| r.header("chatgpt-account-id") == Some(account))
            .count()
    }

    /// The next answer for `account`: its queue, its standing answer, then the global queue.
    pub(super) fn next_scripted_for(&self, account: Option<&str>) -> Option<Scripted> {
        let own = account.and_then(|account| {
            let mut accounts = lock(&self.accounts);
            let script = accounts.get_mut(account)?;
            script.queue.pop_front().or_else(|| script.standing.clone())
        });
        own.or_else(|| self.next_scripted())
    }

    /// Whether `account` gives a standing answer to every call (always overloaded, failing,
    /// capped).
    pub(super) fn has_standing_for(&self, account: Option<&str>) -> bool {
        self.standing_for(account).is_some()
    }

    /// The answer `account` gives to every call, if it has one; its queue is left as it is.
    pub(super) fn standing_for(&self, account: Option<&str>) -> Option<Scripted> {
        lock(&self.accounts).get(account?)?.standing.clone()
    }

    /// A standing HTTP error of `account`, for `GET /models`.
    pub(super) fn standing_status_for(&self, account: Option<&str>) -> Option<Scripted> {
        let standing = self.standing_for(account)?;
        matches!(standing, Scripted::Status { .. }).then_some(standing)
    }

    /// The used percents to report for `account` (defaults: 12.5 and 3.0).
    pub(super) fn used_percent_for(&self, account: Option<&str>) -> (f64, f64) {
        account
            .and_then(|account| lock(&self.accounts).get(account)?.used_percent)
            .unwrap_or((12.5, 3.0))
    }
}
