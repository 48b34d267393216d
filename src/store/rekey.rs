//! Master key rotation: every sealed value (the accounts' three tokens and the canary) opened
//! with the key it is sealed under and sealed again under the new key, in one immediate
//! transaction, with a handover row (see `keyring.rs`) so that handles already open follow.
//! SQLite commits the transaction whole or not at all: a rekey killed at any point leaves a store
//! that opens with exactly one of the two keys, and running it again finishes the rotation.

use rusqlite::{params, TransactionBehavior};

use super::accounts::TOKEN_COLUMNS;
use super::keyring::{canary, CANARY_NAME, HANDOVER_PREFIX, META_ROW};
use super::{MasterKey, Store, StoreError};

/// What a rekey changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rekeyed {
    /// The key the store was sealed under before.
    pub from: String,
    /// Accounts whose tokens are now sealed under the new key.
    pub accounts: usize,
    /// Accounts whose tokens did not open before the rekey (damaged, or under a key this store
    /// never had): left as they were, still unreadable.
    pub unreadable: Vec<String>,
}

impl Store {
    /// Re-seals the store under `new` in one transaction. `before_commit` runs inside it once
    /// every value is sealed again (tests stop the process there). Refused when the store is
    /// already under `new`, or holds nothing sealed yet (there is nothing to rotate: start it
    /// with the new key instead).
    pub fn rekey(
        &self,
        new: &MasterKey,
        before_commit: impl FnOnce(),
    ) -> Result<Rekeyed, StoreError> {
        let mut conn = self.conn()?;
        // The old key's values are gone once this commits: durable against power loss too.
        conn.pragma_update(None, "synchronous", "FULL")?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let old = self.keys.sealing_key(&tx)?;
        if canary(&tx)?.is_none() {
            return Err(StoreError::Conflict(
                "the store holds nothing sealed yet: start it with the new key instead".to_owned(),
            ));
        }
        if old.id_hex() == new.id_hex() {
            return Err(StoreError::Conflict(format!(
                "the store is already sealed with key {}",
                new.id_hex()
            )));
        }
        let (accounts, unreadable) = self.reseal_tokens(&tx, new)?;
        let canary_text = self.keys.open(
            &tx,
            META_ROW,
            CANARY_NAME,
            &canary(&tx)?.unwrap_or_default(),
        )?;
        tx.execute(
            "UPDATE store_meta SET value = ?2 WHERE name = ?1",
            params![CANARY_NAME, new.seal(META_ROW, CANARY_NAME, &canary_text)],
        )?;
        let handover = format!("{HANDOVER_PREFIX}{}", new.id_hex());
        tx.execute(
            "INSERT OR REPLACE INTO store_meta (name, value) VALUES (?1, ?2)",
            params![handover, old.seal(META_ROW, &handover, new.secret_bytes())],
        )?;
        before_commit();
        tx.commit()?;
        Ok(Rekeyed {
            from: old.id_hex(),
            accounts,
            unreadable,
        })
    }

    /// Seals every account's tokens again under `new`; returns how many, and the accounts whose
    /// tokens did not open.
    fn reseal_tokens(
        &self,
        tx: &rusqlite::Transaction<'_>,
        new: &MasterKey,
    ) -> Result<(usize, Vec<String>), StoreError> {
        let rows: Vec<(String, [Vec<u8>; 3])> = {
            let mut statement = tx.prepare(
                "SELECT account_id, id_token, access_token, refresh_token FROM account_tokens",
            )?;
            let rows = statement.query_map([], |row| {
                Ok((row.get(0)?, [row.get(1)?, row.get(2)?, row.get(3)?]))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        let (mut resealed, mut unreadable) = (0, Vec::new());
        for (id, sealed) in rows {
            let opened: Result<Vec<Vec<u8>>, _> = TOKEN_COLUMNS
                .iter()
                .zip(&sealed)
                .map(|(column, value)| self.keys.open(tx, &id, column, value))
                .collect();
            let Ok(plain) = opened else {
                unreadable.push(id);
                continue;
            };
            let fresh: Vec<Vec<u8>> = TOKEN_COLUMNS
                .iter()
                .zip(&plain)
                .map(|(column, value)| new.seal(&id, column, value))
                .collect();
            tx.execute(
                "UPDATE account_tokens SET id_token = ?2, access_token = ?3, refresh_token = ?4
                 WHERE account_id = ?1",
                params![id, fresh[0], fresh[1], fresh[2]],
            )?;
            resealed += 1;
        }
        Ok((resealed, unreadable))
    }

    /// Deletes the handovers earlier rekeys left (each a newer key sealed under an older one):
    /// called by a server starting on the store's current key, once no handle opened with an
    /// older key is left to follow them. Returns how many there were.
    pub fn forget_key_handovers(&self) -> Result<usize, StoreError> {
        forget_handovers(&*self.conn()?)
    }
}

/// Deletes every handover row of the store (or backup) `conn` is open on.
pub(super) fn forget_handovers(conn: &rusqlite::Connection) -> Result<usize, StoreError> {
    let prefix_len = i64::try_from(HANDOVER_PREFIX.len()).unwrap_or(i64::MAX);
    Ok(conn.execute(
        "DELETE FROM store_meta WHERE substr(name, 1, ?1) = ?2",
        params![prefix_len, HANDOVER_PREFIX],
    )?)
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::store::account_routing::tests::account;
    use crate::store::{RefreshedTokens, TokenWrite};

    fn copy(key: &MasterKey) -> MasterKey {
        MasterKey::from_bytes(key.secret_bytes()).unwrap()
    }

    #[test]
    fn a_rekey_reseals_everything_and_a_handle_opened_before_follows_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let running = Store::open(&db, 2, copy(&old)).unwrap();
        let (id, _) = running.import_account(&account("acct-1")).unwrap();
        let done = Store::open(&db, 2, copy(&old))
            .unwrap()
            .rekey(&new, || {})
            .unwrap();
        assert_eq!((done.from, done.accounts), (old.id_hex(), 1));

        // The handle opened before reads the new envelopes and writes under the new key.
        let stored = running.refresh_token(&id).unwrap().unwrap();
        let refreshed = RefreshedTokens {
            replaces_version: stored.token_version,
            refreshed_at: 1,
            id_token: None,
            access_token: Some(SecretString::from("at-after-rekey")),
            refresh_token: None,
            expires_at: None,
            plan: None,
            email: None,
        };
        let written = running.store_refreshed(&id, &refreshed).unwrap();
        assert!(matches!(written, TokenWrite::Stored { .. }));

        // Opened afresh, the store takes the new key only, and with it every token opens.
        assert!(matches!(
            Store::open(&db, 2, copy(&old)),
            Err(StoreError::WrongMasterKey { .. })
        ));
        let reopened = Store::open(&db, 2, copy(&new)).unwrap();
        assert!(reopened.token_set_is_complete(&id).unwrap());
        assert_eq!(reopened.forget_key_handovers().unwrap(), 1);
        assert!(matches!(
            reopened.rekey(&copy(&new), || {}),
            Err(StoreError::Conflict(_))
        ));
    }
}
