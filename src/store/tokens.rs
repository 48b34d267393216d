//! The token lifecycle of an account after import: reading the refresh token for a refresh,
//! storing a refreshed token set by compare-and-swap on `account_tokens.token_version`, and
//! recording why a login needs a human (`reauth_reason`) or why the last refresh failed.
//!
//! Crash safety: a refreshed set is written in one transaction together with its expiry, so the
//! store holds either the old complete set or the new complete set, never a mix.

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use secrecy::{ExposeSecret, SecretString};

use super::{now_unix, Store, StoreError};

/// The refresh token of an account, with the token version it belongs to.
pub struct StoredRefreshToken {
    pub token_version: i64,
    pub refresh_token: SecretString,
}

/// What a token endpoint answered (the issuer may omit any part; present ones replace) and what
/// the new tokens say of the account; the actors keep one the store could not take.
pub use relay_actors::RefreshedTokens;

/// How a compare-and-swap write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenWrite {
    /// The new set is durable under this token version.
    Stored { token_version: i64 },
    /// The stored version was no longer the expected one: someone else wrote first.
    Superseded,
    /// The account no longer exists.
    Gone,
}

impl Store {
    /// The sealed refresh token of `id`, opened, with its token version. Never leaves the server.
    pub fn refresh_token(&self, id: &str) -> Result<Option<StoredRefreshToken>, StoreError> {
        let conn = self.conn()?;
        let row: Option<(i64, Vec<u8>)> = conn
            .query_row(
                "SELECT token_version, refresh_token FROM account_tokens WHERE account_id = ?1",
                [id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let Some((token_version, sealed)) = row else {
            return Ok(None);
        };
        let plain = self.keys.open(&conn, id, "refresh_token", &sealed)?;
        let text = String::from_utf8(plain).map_err(|_| super::CryptoError::Corrupt)?;
        Ok(Some(StoredRefreshToken {
            token_version,
            refresh_token: SecretString::from(text),
        }))
    }

    /// Replaces the present parts of the token set of `id` if its token version is still the one
    /// `tokens` replaces, bumping the version, setting the access token's expiry, plan, email and
    /// `last_refresh` (when the issuer answered), and clearing the last refresh error — all in one
    /// transaction. A locked store (past the busy timeout) or a full disk is an error that
    /// changes nothing: the caller still holds the set and may write it again.
    pub fn store_refreshed(
        &self,
        id: &str,
        tokens: &RefreshedTokens,
    ) -> Result<TokenWrite, StoreError> {
        let mut conn = self.conn()?;
        // The issuer has already spent the old refresh token: this commit must survive a power
        // loss too, not only a crash of the process (WAL + NORMAL defers the fsync).
        conn.pragma_update(None, "synchronous", "FULL")?;
        let written = self.write_refreshed(&mut conn, id, tokens);
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        written
    }

    fn write_refreshed(
        &self,
        conn: &mut super::Conn,
        id: &str,
        tokens: &RefreshedTokens,
    ) -> Result<TokenWrite, StoreError> {
        let expected = tokens.replaces_version;
        // Take the write lock at once: a read-then-write transaction that another writer overtook
        // fails with SQLITE_BUSY without waiting, and this write must not be lost to that.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: Option<i64> = tx
            .query_row(
                "SELECT token_version FROM account_tokens WHERE account_id = ?1",
                [id],
                |row| row.get(0),
            )
            .optional()?;
        match current {
            None => return Ok(TokenWrite::Gone),
            Some(version) if version != expected => return Ok(TokenWrite::Superseded),
            Some(_) => {}
        }
        let parts = [
            ("id_token", &tokens.id_token),
            ("access_token", &tokens.access_token),
            ("refresh_token", &tokens.refresh_token),
        ];
        let key = self.keys.sealing_key(&tx)?;
        for (column, value) in parts {
            if let Some(value) = value {
                let sealed = key.seal(id, column, value.expose_secret().as_bytes());
                tx.execute(
                    &format!("UPDATE account_tokens SET {column} = ?2 WHERE account_id = ?1"),
                    params![id, sealed],
                )?;
            }
        }
        tx.execute(
            "UPDATE account_tokens SET token_version = token_version + 1 WHERE account_id = ?1",
            [id],
        )?;
        tx.execute(
            "UPDATE accounts SET token_expires_at = COALESCE(?2, token_expires_at), last_refresh = ?3,
                 plan = COALESCE(?4, plan), email = COALESCE(?5, email),
                 last_refresh_error = NULL, last_refresh_error_at = NULL, updated_at = ?6
             WHERE id = ?1",
            params![
                id,
                tokens.expires_at,
                tokens.refreshed_at,
                tokens.plan,
                tokens.email,
                now_unix()
            ],
        )?;
        tx.commit()?;
        Ok(TokenWrite::Stored {
            token_version: expected + 1,
        })
    }

    /// Takes the account out of rotation until new credentials arrive — only while its tokens are
    /// still the version that failed (a newer login is not overruled by an old failure).
    pub fn set_reauth_required(
        &self,
        id: &str,
        token_version: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "UPDATE accounts SET reauth_reason = ?3, last_refresh_error = ?3,
                 last_refresh_error_at = ?4, updated_at = ?4
             WHERE id = ?1 AND (SELECT token_version FROM account_tokens WHERE account_id = ?1) = ?2",
            params![id, token_version, reason, now_unix()],
        )?;
        Ok(())
    }

    /// Whether the account's stored token set is complete: every part present, openable with the
    /// master key and non-empty. Opens and checks; returns nothing secret.
    pub fn token_set_is_complete(&self, id: &str) -> Result<bool, StoreError> {
        let conn = self.conn()?;
        let row: Option<[Vec<u8>; 3]> = conn
            .query_row(
                "SELECT id_token, access_token, refresh_token FROM account_tokens WHERE account_id = ?1",
                [id],
                |row| Ok([row.get(0)?, row.get(1)?, row.get(2)?]),
            )
            .optional()?;
        let Some(sealed) = row else {
            return Ok(false);
        };
        let columns = ["id_token", "access_token", "refresh_token"];
        Ok(columns.iter().zip(sealed).all(|(column, value)| {
            self.keys
                .open(&conn, id, column, &value)
                .is_ok_and(|plain| !plain.is_empty())
        }))
    }

    /// Notes a failed refresh attempt that may still succeed later (shown in the admin view) —
    /// only while the tokens are still the version that failed (a late write must not mark the
    /// set a later refresh stored).
    pub fn record_refresh_error(
        &self,
        id: &str,
        token_version: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "UPDATE accounts SET last_refresh_error = ?3, last_refresh_error_at = ?4
             WHERE id = ?1 AND (SELECT token_version FROM account_tokens WHERE account_id = ?1) = ?2",
            params![id, token_version, error, now_unix()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TokenSet;
    use crate::store::{MasterKey, NewAccount};

    fn store_with_account() -> (tempfile::TempDir, Store, String) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 2, MasterKey::generate()).unwrap();
        let account = NewAccount {
            chatgpt_account_id: "acct-1".to_owned(),
            label: None,
            email: None,
            plan: None,
            is_fedramp: false,
            token_expires_at: Some(100),
            last_refresh: None,
            tokens: TokenSet {
                id_token: SecretString::from("id-1"),
                access_token: SecretString::from("at-1"),
                refresh_token: SecretString::from("rt-1"),
            },
        };
        let (id, _) = store.import_account(&account).unwrap();
        (dir, store, id)
    }

    fn refreshed(replaces: i64, access: &str, refresh: &str, expires_at: i64) -> RefreshedTokens {
        RefreshedTokens {
            replaces_version: replaces,
            refreshed_at: 150,
            id_token: None,
            access_token: Some(SecretString::from(access.to_owned())),
            refresh_token: Some(SecretString::from(refresh.to_owned())),
            expires_at: Some(expires_at),
            plan: Some("pro".to_owned()),
            email: None,
        }
    }

    #[test]
    fn a_refresh_replaces_the_present_parts_once_per_version() {
        let (_dir, store, id) = store_with_account();
        let stored = store.refresh_token(&id).unwrap().unwrap();
        assert_eq!(stored.refresh_token.expose_secret(), "rt-1");
        let v = stored.token_version;
        let write = store
            .store_refreshed(&id, &refreshed(v, "at-2", "rt-2", 200))
            .unwrap();
        assert_eq!(
            write,
            TokenWrite::Stored {
                token_version: v + 1
            }
        );
        // The losing side of a race finds the version moved and writes nothing.
        let lost = store
            .store_refreshed(&id, &refreshed(v, "at-x", "rt-x", 300))
            .unwrap();
        assert_eq!(lost, TokenWrite::Superseded);
        let creds = store.load_credentials(&id).unwrap().unwrap();
        assert_eq!(creds.access_token.expose_secret(), "at-2");
        assert_eq!(creds.expires_at, Some(200));
        assert_eq!(creds.last_refresh, Some(150), "when the issuer answered");
        assert_eq!(
            store.list_accounts().unwrap()[0].plan.as_deref(),
            Some("pro")
        );
        let stored = store.refresh_token(&id).unwrap().unwrap();
        assert_eq!(stored.refresh_token.expose_secret(), "rt-2");
        assert_eq!(
            store
                .store_refreshed("nobody", &refreshed(1, "a", "b", 1))
                .unwrap(),
            TokenWrite::Gone
        );
    }

    #[test]
    fn a_set_refused_by_a_full_disk_changes_nothing_and_lands_once_there_is_room() {
        let (_dir, store, id) = store_with_account();
        let v = store.refresh_token(&id).unwrap().unwrap().token_version;
        // Tokens that need new pages (an issuer's larger token, the store's fuller rows).
        let large = "a".repeat(64 * 1024);
        let tokens = refreshed(v, &large, "rt-2", 200);
        store.simulate_full_disk(true).unwrap();
        let refused = store.store_refreshed(&id, &tokens).unwrap_err();
        assert!(refused.to_string().contains("full"), "{refused}");
        let stored = store.refresh_token(&id).unwrap().unwrap();
        assert_eq!(
            (stored.token_version, stored.refresh_token.expose_secret()),
            (v, "rt-1"),
            "the old set, whole"
        );
        store.simulate_full_disk(false).unwrap();
        let write = store.store_refreshed(&id, &tokens).unwrap();
        assert_eq!(
            write,
            TokenWrite::Stored {
                token_version: v + 1
            }
        );
        let stored = store.refresh_token(&id).unwrap().unwrap();
        assert_eq!(stored.refresh_token.expose_secret(), "rt-2");
    }

    #[test]
    fn reauth_is_recorded_for_the_failed_version_only_and_cleared_by_import() {
        let (_dir, store, id) = store_with_account();
        let v = store.refresh_token(&id).unwrap().unwrap().token_version;
        store.set_reauth_required(&id, v + 5, "stale").unwrap();
        let creds = store.load_credentials(&id).unwrap().unwrap();
        assert_eq!(creds.auth, relay_actors::AuthState::Valid);
        store.set_reauth_required(&id, v, "log in again").unwrap();
        let creds = store.load_credentials(&id).unwrap().unwrap();
        assert_eq!(
            creds.auth,
            relay_actors::AuthState::ReauthRequired {
                reason: "log in again".to_owned()
            }
        );
        let summary = &store.list_accounts().unwrap()[0];
        assert_eq!(summary.reauth_reason.as_deref(), Some("log in again"));
        assert_eq!(summary.shown_state(), "reauth_required");
        assert_eq!(summary.state, "active", "the operator's intent is kept");
    }
}
