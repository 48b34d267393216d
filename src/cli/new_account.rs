//! A new account into the store, from an `auth.json` import or a login: its `--label`, checked
//! as every name is, and what the operator is told (the id alone on stdout). Shared by
//! `account import` and `account login`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use super::printable;
use crate::obs::mask_email;
use crate::store::{rfc3339, ImportOutcome, NewAccount, Store};

/// An account's `--label`, checked as every name is.
pub(super) fn checked_label(label: Option<&str>) -> anyhow::Result<Option<String>> {
    Ok(label
        .map(|l| crate::bounds::name("--label", l))
        .transpose()?)
}

/// Stores an account read from an auth.json or a login, and says what happened: the id alone on
/// stdout, the rest on stderr. Never a token.
pub(super) fn store_account(store: &Store, account: &NewAccount) -> anyhow::Result<()> {
    let (id, outcome) = store.import_account(account)?;
    let email = account.email.as_deref().map_or("-".to_owned(), mask_email);
    let email = printable(&email);
    let plan = printable(account.plan.as_deref().unwrap_or("unknown plan"));
    let expiry = account
        .token_expires_at
        .map_or("unknown".to_owned(), rfc3339);
    if outcome == ImportOutcome::Updated {
        eprintln!(
            "warning: this ChatGPT account was already in the pool as {id}; its tokens were replaced."
        );
    }
    eprintln!("imported account {id} ({email}, {plan}, access token expires {expiry})");
    eprintln!(
        "note: codex-relay now owns this login. Refresh tokens are single-use: stop using this \
         auth.json anywhere else (another machine, relay or CLI), or both copies end up logged out."
    );
    say!("{id}");
    Ok(())
}
