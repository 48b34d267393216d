//! Rows of the account pool: import (deduplicated by ChatGPT account), listing without secrets,
//! and loading one account's credentials for its actor.

use relay_actors::{AccountCredentials, AccountId, AdminState, AuthState};
use rusqlite::{params, OptionalExtension, Row};
use secrecy::{ExposeSecret, SecretString};

use super::{now_unix, Store, StoreError};
use crate::domain::TokenSet;

/// An account ready to be stored, as read from an auth.json or a login flow.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub chatgpt_account_id: String,
    pub label: Option<String>,
    pub email: Option<String>,
    pub plan: Option<String>,
    pub is_fedramp: bool,
    pub token_expires_at: Option<i64>,
    pub last_refresh: Option<i64>,
    pub tokens: TokenSet,
}

/// Whether an import created a new account or replaced the tokens of an existing one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    Created,
    Updated,
}

/// An account as operators see it: no token, email unmasked only inside the process.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AccountSummary {
    pub id: String,
    pub label: String,
    pub chatgpt_account_id: String,
    pub email: Option<String>,
    pub plan: Option<String>,
    pub state: String,
    pub state_reason: Option<String>,
    pub token_expires_at: Option<i64>,
    pub last_refresh: Option<i64>,
    pub created_at: i64,
    /// Why the login needs a human (set by a failed refresh; cleared by import or login).
    pub reauth_reason: Option<String>,
    pub last_refresh_error: Option<String>,
    pub last_refresh_error_at: Option<i64>,
    /// Why the account's sealed tokens do not open with the master key (sealed under another
    /// key, damaged); such an account is never routed to.
    pub unreadable: Option<String>,
}

impl AccountSummary {
    /// The state to show operators: `unreadable` when its tokens do not open, else the
    /// operator's intent (`state`), unless an active account's login needs a human
    /// (`reauth_required`).
    pub fn shown_state(&self) -> &str {
        match (&self.state[..], &self.reauth_reason) {
            _ if self.unreadable.is_some() => "unreadable",
            ("active", Some(_)) => "reauth_required",
            (state, _) => state,
        }
    }

    /// Why the account is in its shown state, and what to do, when that needs saying.
    pub fn shown_reason(&self) -> Option<&str> {
        self.unreadable
            .as_deref()
            .or(self.reauth_reason.as_deref())
            .or(self.state_reason.as_deref())
    }
}

/// The relay's id of the account with this ChatGPT account id, when it is stored.
fn account_id_of(
    conn: &rusqlite::Connection,
    chatgpt_account_id: &str,
) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT id FROM accounts WHERE chatgpt_account_id = ?1",
        [chatgpt_account_id],
        |row| row.get(0),
    )
    .optional()
}

/// A re-import: the account's claims are replaced and its health reasons cleared (fresh tokens
/// clear a dead login); its label changes only when the import names one.
fn update_imported_account(
    conn: &rusqlite::Connection,
    id: &str,
    account: &NewAccount,
    now: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE accounts SET email = ?2, plan = ?3, is_fedramp = ?4, token_expires_at = ?5,
             last_refresh = ?6, state_reason = NULL,
             reauth_reason = NULL, last_refresh_error = NULL, last_refresh_error_at = NULL,
             version = version + 1, updated_at = ?7,
             label = COALESCE(?8, label)
         WHERE id = ?1",
        params![
            id,
            account.email,
            account.plan,
            account.is_fedramp,
            account.token_expires_at,
            account.last_refresh,
            now,
            account.label
        ],
    )?;
    Ok(())
}

/// A first import: a new row under a fresh id, labelled as given, else by the masked email, else
/// by the ChatGPT account id. Returns the new id.
fn insert_imported_account(
    conn: &rusqlite::Connection,
    account: &NewAccount,
    now: i64,
) -> rusqlite::Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    let label = account
        .label
        .clone()
        .or_else(|| account.email.as_deref().map(crate::obs::mask_email))
        .unwrap_or_else(|| account.chatgpt_account_id.clone());
    conn.execute(
        "INSERT INTO accounts (id, chatgpt_account_id, label, email, plan, is_fedramp,
             token_expires_at, last_refresh, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        params![
            id,
            account.chatgpt_account_id,
            label,
            account.email,
            account.plan,
            account.is_fedramp,
            account.token_expires_at,
            account.last_refresh,
            now
        ],
    )?;
    Ok(id)
}

/// The account's sealed token set (id, access, refresh token), replacing any earlier one and
/// counting its version up so the account's actor notices the change.
fn store_token_set(
    conn: &rusqlite::Connection,
    id: &str,
    sealed: &[Vec<u8>; 3],
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO account_tokens (account_id, token_version, id_token, access_token, refresh_token)
         VALUES (?1, 1, ?2, ?3, ?4)
         ON CONFLICT (account_id) DO UPDATE SET token_version = token_version + 1,
             id_token = excluded.id_token, access_token = excluded.access_token,
             refresh_token = excluded.refresh_token",
        params![id, sealed[0], sealed[1], sealed[2]],
    )?;
    Ok(())
}

pub(super) const TOKEN_COLUMNS: [&str; 3] = ["id_token", "access_token", "refresh_token"];

/// The columns of an [`AccountSummary`], then the sealed tokens (`a` = accounts, `t` =
/// account_tokens, joined with [`SUMMARY_FROM`]).
const SUMMARY: &str = "a.id, a.label, a.chatgpt_account_id, a.email, a.plan, a.state,
    a.state_reason, a.token_expires_at, a.last_refresh, a.created_at, a.reauth_reason,
    a.last_refresh_error, a.last_refresh_error_at, t.id_token, t.access_token, t.refresh_token";
const SUMMARY_FROM: &str = "accounts a LEFT JOIN account_tokens t ON t.account_id = a.id";

/// What the server compares to notice a change: the row's version and its token set's version
/// in one number (`a` = accounts, `t` = account_tokens).
const VERSION: &str = "a.version * 1000000 + COALESCE(t.token_version, 0)";

impl Store {
    /// Stores an account, or replaces the tokens and claims of the account with the same ChatGPT
    /// account id. Returns the relay's account id. One transaction: never a torn token set.
    pub fn import_account(
        &self,
        account: &NewAccount,
    ) -> Result<(String, ImportOutcome), StoreError> {
        let mut conn = self.conn()?;
        // The write lock at once: this reads, then writes, while the server may be writing (a
        // refresh, pool state); a deferred transaction overtaken that way fails without waiting.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now = now_unix();
        let (id, outcome) = match account_id_of(&tx, &account.chatgpt_account_id)? {
            Some(id) => {
                update_imported_account(&tx, &id, account, now)?;
                (id, ImportOutcome::Updated)
            }
            None => (
                insert_imported_account(&tx, account, now)?,
                ImportOutcome::Created,
            ),
        };
        let key = self.keys.sealing_key(&tx)?;
        store_token_set(&tx, &id, &seal_tokens(&key, &id, &account.tokens))?;
        tx.commit()?;
        Ok((id, outcome))
    }

    /// Every account, oldest first, without secrets.
    pub fn list_accounts(&self) -> Result<Vec<AccountSummary>, StoreError> {
        let conn = self.conn()?;
        let mut statement = conn.prepare(&format!(
            "SELECT {SUMMARY} FROM {SUMMARY_FROM} ORDER BY a.created_at, a.id"
        ))?;
        let rows = statement.query_map([], |row| self.summary_from_row(&conn, row))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One account, without secrets. `id` may be the relay id or the ChatGPT account id.
    pub fn get_account(&self, id: &str) -> Result<AccountSummary, StoreError> {
        let conn = self.conn()?;
        conn.query_row(
            &format!(
                "SELECT {SUMMARY} FROM {SUMMARY_FROM} WHERE a.id = ?1 OR a.chatgpt_account_id = ?1"
            ),
            [id],
            |row| self.summary_from_row(&conn, row),
        )
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("no account with id {id}")))
    }

    fn summary_from_row(
        &self,
        conn: &rusqlite::Connection,
        row: &Row<'_>,
    ) -> rusqlite::Result<AccountSummary> {
        let mut summary = summary_from_row(row)?;
        let sealed: [Option<Vec<u8>>; 3] = [row.get(13)?, row.get(14)?, row.get(15)?];
        summary.unreadable = self.unreadable(conn, &summary.id, sealed);
        Ok(summary)
    }

    /// Why an account's sealed tokens do not open, if they do not. Said without a secret: key
    /// ids are public fingerprints.
    fn unreadable(
        &self,
        conn: &rusqlite::Connection,
        id: &str,
        sealed: [Option<Vec<u8>>; 3],
    ) -> Option<String> {
        const AGAIN: &str = "import the account or log it in again (`codex-relay account import` \
                             or `account login`, or the admin API)";
        let opened = TOKEN_COLUMNS
            .iter()
            .zip(sealed)
            .try_for_each(|(column, value)| {
                let value = value.ok_or(None)?;
                self.keys
                    .open(conn, id, column, &value)
                    .map(drop)
                    .map_err(Some)
            });
        match opened {
            Ok(()) => None,
            Err(None) => Some(format!("no tokens are stored for it: {AGAIN}")),
            Err(Some(super::CryptoError::WrongKey { expected, found })) => Some(format!(
                "its tokens were sealed with master key {found}, not this store's key {expected}: \
                 {AGAIN}"
            )),
            Err(Some(_)) => Some(format!(
                "its sealed tokens are damaged or belong to another account: {AGAIN}"
            )),
        }
    }

    /// Records what the operator wants of an account (active, disabled, draining); the server
    /// follows at its next sync. Returns the relay id.
    pub fn set_account_state(&self, id: &str, state: AdminState) -> Result<String, StoreError> {
        let conn = self.conn()?;
        let relay_id: Option<String> = conn
            .query_row(
                "UPDATE accounts SET state = ?2, version = version + 1, updated_at = ?3
                 WHERE id = ?1 OR chatgpt_account_id = ?1 RETURNING id",
                params![id, state.name(), now_unix()],
                |row| row.get(0),
            )
            .optional()?;
        relay_id.ok_or_else(|| StoreError::NotFound(format!("no account with id {id}")))
    }

    /// Deletes an account and its tokens. `id` may be the relay id or the ChatGPT account id.
    pub fn remove_account(&self, id: &str) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let removed = conn.execute(
            "DELETE FROM accounts WHERE id = ?1 OR chatgpt_account_id = ?1",
            [id],
        )?;
        if removed == 0 {
            return Err(StoreError::NotFound(format!("no account with id {id}")));
        }
        Ok(())
    }

    /// `(id, version)` of every account: what the server's reconciler compares each round.
    pub fn account_versions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let conn = self.conn()?;
        let mut statement = conn.prepare(&format!(
            "SELECT a.id, {VERSION} FROM accounts a LEFT JOIN account_tokens t ON t.account_id = a.id"
        ))?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// `(plan, account id)` of every active account whose plan is known.
    pub fn plan_accounts(&self) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn()?;
        let mut statement = conn.prepare(
            "SELECT plan, id FROM accounts WHERE state = 'active' AND plan IS NOT NULL ORDER BY plan, id",
        )?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The credentials an account's actor serves with, opened with the master key.
    pub fn load_credentials(&self, id: &str) -> Result<Option<AccountCredentials>, StoreError> {
        let conn = self.conn()?;
        let row = conn
            .query_row(
                &format!(
                    "SELECT a.chatgpt_account_id, a.is_fedramp, a.state, t.access_token, {VERSION},
                            t.token_version, a.token_expires_at, a.last_refresh, a.reauth_reason,
                            a.plan
                     FROM accounts a JOIN account_tokens t ON t.account_id = a.id WHERE a.id = ?1"
                ),
                [id],
                |row| {
                    Ok(LoadedRow {
                        chatgpt_account_id: row.get(0)?,
                        is_fedramp: row.get(1)?,
                        state: row.get(2)?,
                        sealed_access: row.get(3)?,
                        version: row.get(4)?,
                        token_version: row.get(5)?,
                        expires_at: row.get(6)?,
                        last_refresh: row.get(7)?,
                        reauth_reason: row.get(8)?,
                        plan: row.get(9)?,
                    })
                },
            )
            .optional()?;
        let Some(row) = row else {
            return Ok(None);
        };
        let access = self
            .keys
            .open(&conn, id, "access_token", &row.sealed_access)?;
        let access = String::from_utf8(access).map_err(|_| super::CryptoError::Corrupt)?;
        let pool = super::account_routing::pool_row(&conn, id)?;
        Ok(Some(AccountCredentials {
            id: AccountId::from(id),
            chatgpt_account_id: row.chatgpt_account_id,
            access_token: SecretString::from(access),
            is_fedramp: row.is_fedramp,
            // An unknown stored state keeps the account out rather than guessing.
            admin: AdminState::parse(&row.state).unwrap_or(AdminState::Disabled),
            auth: match row.reauth_reason {
                Some(reason) => AuthState::ReauthRequired { reason },
                None => AuthState::Valid,
            },
            routing: pool.routing,
            pool: pool.record,
            version: row.version,
            token_version: row.token_version,
            expires_at: row.expires_at,
            last_refresh: row.last_refresh,
            plan: row.plan,
        }))
    }
}

/// One account's row as `load_credentials` reads it, before the access token is opened.
struct LoadedRow {
    chatgpt_account_id: String,
    is_fedramp: bool,
    state: String,
    sealed_access: Vec<u8>,
    version: i64,
    token_version: i64,
    expires_at: Option<i64>,
    last_refresh: Option<i64>,
    reauth_reason: Option<String>,
    plan: Option<String>,
}

fn summary_from_row(row: &Row<'_>) -> rusqlite::Result<AccountSummary> {
    Ok(AccountSummary {
        id: row.get(0)?,
        label: row.get(1)?,
        chatgpt_account_id: row.get(2)?,
        email: row.get(3)?,
        plan: row.get(4)?,
        state: row.get(5)?,
        state_reason: row.get(6)?,
        token_expires_at: row.get(7)?,
        last_refresh: row.get(8)?,
        created_at: row.get(9)?,
        reauth_reason: row.get(10)?,
        last_refresh_error: row.get(11)?,
        last_refresh_error_at: row.get(12)?,
        unreadable: None,
    })
}

/// The three tokens of `tokens`, each sealed with `key` for its cell of `id`'s row.
fn seal_tokens(key: &super::MasterKey, id: &str, tokens: &TokenSet) -> [Vec<u8>; 3] {
    let values = [
        &tokens.id_token,
        &tokens.access_token,
        &tokens.refresh_token,
    ];
    let mut sealed = TOKEN_COLUMNS
        .iter()
        .zip(values)
        .map(|(column, value)| key.seal(id, column, value.expose_secret().as_bytes()));
    [(); 3].map(|()| sealed.next().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MasterKey;

    fn account(chatgpt_id: &str, access: &str) -> NewAccount {
        NewAccount {
            chatgpt_account_id: chatgpt_id.to_owned(),
            label: None,
            email: Some("someone@example.com".to_owned()),
            plan: Some("plus".to_owned()),
            is_fedramp: false,
            token_expires_at: Some(2_000_000_000),
            last_refresh: None,
            tokens: TokenSet {
                id_token: SecretString::from("id-token"),
                access_token: SecretString::from(access.to_owned()),
                refresh_token: SecretString::from("rt-token"),
            },
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 2, MasterKey::generate()).unwrap();
        (dir, store)
    }

    #[test]
    fn importing_the_same_chatgpt_account_updates_instead_of_duplicating() {
        let (_dir, store) = store();
        let (first, outcome) = store.import_account(&account("acct-1", "at-1")).unwrap();
        assert_eq!(outcome, ImportOutcome::Created);
        let before = store.account_versions().unwrap();
        let (second, outcome) = store.import_account(&account("acct-1", "at-2")).unwrap();
        assert_eq!(
            (second.as_str(), outcome),
            (first.as_str(), ImportOutcome::Updated)
        );
        assert_eq!(store.list_accounts().unwrap().len(), 1);
        assert_ne!(store.account_versions().unwrap(), before);
        let creds = store.load_credentials(&first).unwrap().unwrap();
        assert_eq!(creds.access_token.expose_secret(), "at-2");
    }

    #[test]
    fn tokens_are_sealed_at_rest() {
        let (dir, store) = store();
        store
            .import_account(&account("acct-1", "at-plaintext-marker"))
            .unwrap();
        drop(store);
        let raw = std::fs::read(dir.path().join("db")).unwrap();
        let wal = std::fs::read(dir.path().join("db-wal")).unwrap_or_default();
        let needle = b"at-plaintext-marker";
        for bytes in [raw, wal] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle));
        }
    }

    #[test]
    fn removing_an_account_removes_its_tokens() {
        let (_dir, store) = store();
        let (id, _) = store.import_account(&account("acct-1", "at")).unwrap();
        store.remove_account(&id).unwrap();
        assert!(store.load_credentials(&id).unwrap().is_none());
        assert!(store.remove_account(&id).is_err());
    }
}
