//! API keys of the data plane. A key is shown once at creation; the store keeps only its SHA-256
//! (keys are 256 random bits, so a fast hash is the right tool) and a short public prefix.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use rusqlite::params;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::{now_unix, Store, StoreError};

/// Every key starts with this, so secret scanners and people recognise it.
pub const KEY_PREFIX: &str = "sk-relay-";
const PUBLIC_PREFIX_LEN: usize = KEY_PREFIX.len() + 6;

/// SHA-256 of a whole API key.
pub type KeyHash = [u8; 32];

/// A key as listed: never the key itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A key just created: the only time its text exists outside the client.
pub struct CreatedKey {
    pub row: ApiKeyRow,
    pub key: SecretString,
}

/// Hashes presented key text for lookup.
pub fn hash_key(text: &str) -> KeyHash {
    Sha256::digest(text.as_bytes()).into()
}

impl Store {
    pub fn create_key(&self, name: &str) -> Result<CreatedKey, StoreError> {
        let mut random = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
        let row = ApiKeyRow {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            prefix: key[..PUBLIC_PREFIX_LEN].to_owned(),
            created_at: now_unix(),
            revoked_at: None,
        };
        self.conn()?.execute(
            "INSERT INTO api_keys (id, name, prefix, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![row.id, row.name, row.prefix, hash_key(&key), row.created_at],
        )?;
        Ok(CreatedKey {
            row,
            key: SecretString::from(key),
        })
    }

    pub fn list_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let conn = self.conn()?;
        let mut statement = conn.prepare(
            "SELECT id, name, prefix, created_at, revoked_at FROM api_keys ORDER BY created_at, id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(ApiKeyRow {
                id: row.get(0)?,
                name: row.get(1)?,
                prefix: row.get(2)?,
                created_at: row.get(3)?,
                revoked_at: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes a key by id or by name. Revoking twice is not an error.
    pub fn revoke_key(&self, id_or_name: &str) -> Result<(), StoreError> {
        let changed = self.conn()?.execute(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1 OR name = ?1",
            params![id_or_name, now_unix()],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!(
                "no API key with id or name {id_or_name}"
            )));
        }
        Ok(())
    }

    /// Hashes of every key that may be used now, with the key's id.
    pub fn active_keys(&self) -> Result<Vec<(KeyHash, String)>, StoreError> {
        let conn = self.conn()?;
        let mut statement =
            conn.prepare("SELECT hash, id FROM api_keys WHERE revoked_at IS NULL")?;
        let rows = statement.query_map([], |row| {
            let hash: Vec<u8> = row.get(0)?;
            Ok((hash, row.get::<_, String>(1)?))
        })?;
        let mut keys = Vec::new();
        for row in rows {
            let (hash, id) = row?;
            if let Ok(hash) = KeyHash::try_from(hash.as_slice()) {
                keys.push((hash, id));
            }
        }
        Ok(keys)
    }
}

/// The key text, for the one moment it is printed.
pub fn reveal(key: &CreatedKey) -> &str {
    key.key.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MasterKey;

    #[test]
    fn a_key_is_stored_as_a_hash_and_can_be_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 2, MasterKey::generate()).unwrap();
        let created = store.create_key("ci").unwrap();
        let text = reveal(&created).to_owned();
        assert!(text.starts_with(KEY_PREFIX));
        assert!(text.starts_with(&created.row.prefix));
        let active = store.active_keys().unwrap();
        assert_eq!(active, vec![(hash_key(&text), created.row.id.clone())]);
        store.revoke_key("ci").unwrap();
        assert!(store.active_keys().unwrap().is_empty());
        assert!(store.list_keys().unwrap()[0].revoked_at.is_some());
        assert!(store.revoke_key("nope").is_err());
    }
}
