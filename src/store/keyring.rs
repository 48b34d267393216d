//! The master keys one store handle opens and seals with: the key it was opened with, and the
//! keys it learns when a `store rekey` re-seals the store while it is open.
//!
//! A rekey leaves a handover row in `store_meta` (`master_key_handover:<new key id>`): the new
//! key sealed under the key it replaces, written in the rekey's own transaction. A handle that
//! meets an envelope of a key id it does not hold, or whose store's canary names such a key,
//! opens the handover with a key it holds and keeps the new key too; so a running server follows
//! a rotation without a restart, and never seals with a key the store has left. A store opened
//! afresh must be given the canary's key itself: handovers are only for handles already open, and
//! a server started on the new key deletes them ([`Store::forget_key_handovers`]).
//!
//! [`Store::forget_key_handovers`]: super::Store::forget_key_handovers

use std::sync::{Arc, RwLock};

use rusqlite::{Connection, OptionalExtension};

use super::crypto::sealed_by;
use super::{CryptoError, MasterKey, StoreError};

/// The row and column every `store_meta` value is sealed for.
pub(super) const META_ROW: &str = "store_meta";
/// The canary's name in `store_meta`: sealed text that proves which key the store is under.
pub(super) const CANARY_NAME: &str = "master_key_canary";
/// What a handover row's name starts with; the new key's id follows.
pub(super) const HANDOVER_PREFIX: &str = "master_key_handover:";

pub(super) struct Keyring {
    configured: Arc<MasterKey>,
    /// The configured key first, then the keys learned from handovers, oldest first.
    known: RwLock<Vec<Arc<MasterKey>>>,
}

impl Keyring {
    pub(super) fn new(configured: MasterKey) -> Keyring {
        let configured = Arc::new(configured);
        Keyring {
            known: RwLock::new(vec![Arc::clone(&configured)]),
            configured,
        }
    }

    /// The key the handle was opened with.
    pub(super) fn configured(&self) -> &MasterKey {
        &self.configured
    }

    /// Opens `envelope` (sealed for `row`, `column`) with the key it names, learning that key
    /// from the store's handovers when this handle does not hold it yet.
    pub(super) fn open(
        &self,
        conn: &Connection,
        row: &str,
        column: &str,
        envelope: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let id = sealed_by(envelope).ok_or(CryptoError::Corrupt)?;
        let key = match self.find(&id) {
            Some(key) => key,
            // A store that cannot be read for its handovers leaves the key unknown: said below.
            None => match self.learn(conn) {
                Ok(()) => self.find(&id),
                Err(_) => None,
            }
            .unwrap_or_else(|| Arc::clone(&self.configured)),
        };
        key.open(row, column, envelope)
    }

    /// The key new values are sealed with: the one the store's canary is sealed with, read in
    /// the caller's (writing) transaction, so a write racing a rekey never seals with the key the
    /// rekey just retired.
    pub(super) fn sealing_key(&self, conn: &Connection) -> Result<Arc<MasterKey>, StoreError> {
        let Some(id) = canary(conn)?.map(|c| sealed_by(&c).unwrap_or_default()) else {
            return Ok(Arc::clone(&self.configured));
        };
        if let Some(key) = self.find(&id) {
            return Ok(key);
        }
        self.learn(conn)?;
        self.find(&id).ok_or_else(|| StoreError::WrongMasterKey {
            expected: self.configured.id_hex(),
            found: id,
        })
    }

    fn find(&self, id: &str) -> Option<Arc<MasterKey>> {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        known.iter().find(|k| k.id_hex() == id).cloned()
    }

    /// Learns every key a chain of handovers leads to from a key this handle holds.
    fn learn(&self, conn: &Connection) -> Result<(), StoreError> {
        let handovers = handovers(conn)?;
        loop {
            let learned = handovers.iter().find_map(|(name, sealed)| {
                let target = name.strip_prefix(HANDOVER_PREFIX)?;
                if self.find(target).is_some() {
                    return None;
                }
                let opener = self.find(&sealed_by(sealed)?)?;
                let bytes = opener.open(META_ROW, name, sealed).ok()?;
                MasterKey::from_bytes(&bytes)
                    .ok()
                    .filter(|key| key.id_hex() == target)
            });
            let Some(key) = learned else {
                return Ok(());
            };
            let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
            known.push(Arc::new(key));
        }
    }
}

/// The sealed canary, if the store has one yet.
pub(super) fn canary(conn: &Connection) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT value FROM store_meta WHERE name = ?1",
            [CANARY_NAME],
            |row| row.get(0),
        )
        .optional()?)
}

fn handovers(conn: &Connection) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let mut statement =
        conn.prepare("SELECT name, value FROM store_meta WHERE substr(name, 1, ?1) = ?2")?;
    let prefix_len = i64::try_from(HANDOVER_PREFIX.len()).unwrap_or(i64::MAX);
    let rows = statement.query_map(rusqlite::params![prefix_len, HANDOVER_PREFIX], |row| {
        Ok((row.get(0)?, row.get(1)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
