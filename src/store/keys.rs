//! API keys of the data plane. A key is shown once at creation; the store keeps only its SHA-256
//! (keys are 256 random bits, so a fast hash is the right tool) and a short public prefix.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use std::sync::Arc;

use super::policy_columns::{json_list, limits_at, parse_list, LimitTable};
use super::{now_unix, Store, StoreError};
use crate::domain::{KeyPolicy, Limits};

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
    pub tenant: Option<String>,
    pub expires_at: Option<i64>,
    pub models: Option<Vec<String>>,
    pub limits: Limits,
}

/// A key just created: the only time its text exists outside the client.
pub struct CreatedKey {
    pub row: ApiKeyRow,
    pub key: SecretString,
}

/// What a new key is made with.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: String,
    /// Tenant id or name.
    pub tenant: Option<String>,
    pub expires_at: Option<i64>,
    pub models: Option<Vec<String>>,
    pub limits: Limits,
}

/// An active key as the key ring holds it: the hash to find it by and its policy.
pub type KeyRecord = (KeyHash, KeyPolicy);

/// Hashes presented key text for lookup.
pub fn hash_key(text: &str) -> KeyHash {
    Sha256::digest(text.as_bytes()).into()
}

/// The columns [`key_row`] reads, from `api_keys k LEFT JOIN tenants t`.
fn key_columns() -> String {
    let limits = LimitTable::Keys.select("k");
    format!(
        "k.id, k.name, k.prefix, k.created_at, k.revoked_at, t.name, k.expires_at, k.models,
         {limits}"
    )
}

impl Store {
    /// Creates a key with only a name (no tenant, no limits of its own).
    pub fn create_key(&self, name: &str) -> Result<CreatedKey, StoreError> {
        self.create_key_with(&NewKey {
            name: name.to_owned(),
            ..NewKey::default()
        })
    }

    pub fn create_key_with(&self, new: &NewKey) -> Result<CreatedKey, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let tenant = match &new.tenant {
            Some(t) => Some(super::tenants::tenant_id(&tx, t)?),
            None => None,
        };
        let mut random = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
        let id = uuid::Uuid::new_v4().to_string();
        let models = new.models.as_ref().map(|m| json_list(m));
        tx.execute(
            "INSERT INTO api_keys (id, name, prefix, hash, created_at, tenant_id, expires_at, models)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                id, new.name, &key[..PUBLIC_PREFIX_LEN], hash_key(&key), now_unix(), tenant,
                new.expires_at, models
            ],
        )?;
        LimitTable::Keys.write(&tx, &id, &new.limits)?;
        let row = self.key_row(&tx, &id)?;
        tx.commit()?;
        Ok(CreatedKey {
            row,
            key: SecretString::from(key),
        })
    }

    pub(super) fn key_row(
        &self,
        conn: &rusqlite::Connection,
        id: &str,
    ) -> Result<ApiKeyRow, StoreError> {
        let sql = format!(
            "SELECT {} FROM api_keys k LEFT JOIN tenants t ON t.id = k.tenant_id WHERE k.id = ?1",
            key_columns()
        );
        Ok(conn.query_row(&sql, [id], key_row)?)
    }

    pub fn list_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let conn = self.conn()?;
        let sql = format!(
            "SELECT {} FROM api_keys k LEFT JOIN tenants t ON t.id = k.tenant_id
             ORDER BY k.created_at, k.id",
            key_columns()
        );
        let mut statement = conn.prepare(&sql)?;
        let rows = statement.query_map([], key_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One key by id or name.
    pub fn get_key(&self, id_or_name: &str) -> Result<ApiKeyRow, StoreError> {
        let conn = self.conn()?;
        let sql = format!(
            "SELECT {} FROM api_keys k LEFT JOIN tenants t ON t.id = k.tenant_id
             WHERE k.id = ?1 OR k.name = ?1 ORDER BY k.created_at LIMIT 1",
            key_columns()
        );
        conn.query_row(&sql, [id_or_name], key_row)
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("no API key with id or name {id_or_name}")))
    }

    /// Revokes one key, by id or by a name only one active key has (names are not unique: a
    /// rotated key keeps its name, and revoking by a shared name would take the new key too);
    /// returns its id. Revoking twice by id is not an error.
    pub fn revoke_key(&self, id_or_name: &str) -> Result<String, StoreError> {
        let conn = self.conn()?;
        let by_id: Option<String> = conn
            .query_row("SELECT id FROM api_keys WHERE id = ?1", [id_or_name], |r| {
                r.get(0)
            })
            .optional()?;
        let id = match by_id {
            Some(id) => id,
            None => live_key_id(&conn, id_or_name)?,
        };
        conn.execute(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
            params![id, now_unix()],
        )?;
        Ok(id)
    }

    /// Every key that is not revoked, with its policy (tenant included). Expired keys are
    /// returned too: the key ring refuses them with a message that says why.
    pub fn active_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let conn = self.conn()?;
        let tenants = super::tenants::tenant_policies(&conn)?;
        let sql = format!(
            "SELECT k.hash, k.id, k.name, k.tenant_id, k.expires_at, k.models, {}
             FROM api_keys k WHERE k.revoked_at IS NULL",
            LimitTable::Keys.select("k")
        );
        let mut statement = conn.prepare(&sql)?;
        let rows = statement.query_map([], |row| {
            let hash: Vec<u8> = row.get(0)?;
            let tenant: Option<String> = row.get(3)?;
            let policy = KeyPolicy {
                id: Arc::from(row.get::<_, String>(1)?),
                name: row.get(2)?,
                tenant: tenant.and_then(|t| tenants.get(&t).cloned()),
                expires_at: row.get(4)?,
                models: parse_list(row.get(5)?),
                limits: limits_at(row, 6)?,
            };
            Ok((hash, policy))
        })?;
        let mut keys = Vec::new();
        for row in rows {
            let (hash, policy) = row?;
            if let Ok(hash) = KeyHash::try_from(hash.as_slice()) {
                keys.push((hash, policy));
            }
        }
        Ok(keys)
    }
}

fn key_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: row.get(0)?,
        name: row.get(1)?,
        prefix: row.get(2)?,
        created_at: row.get(3)?,
        revoked_at: row.get(4)?,
        tenant: row.get(5)?,
        expires_at: row.get(6)?,
        models: parse_list(row.get(7)?),
        limits: limits_at(row, 8)?,
    })
}

/// The id of the key an operator names: by id, else by name among keys not revoked; a name
/// several keys share is refused rather than guessed.
pub(super) fn live_key_id(conn: &Connection, id_or_name: &str) -> Result<String, StoreError> {
    let by_id: Option<Option<i64>> = conn
        .query_row(
            "SELECT revoked_at FROM api_keys WHERE id = ?1",
            [id_or_name],
            |r| r.get(0),
        )
        .optional()?;
    match by_id {
        Some(Some(_)) => {
            return Err(StoreError::Conflict(format!(
                "API key {id_or_name} is revoked and cannot be changed"
            )))
        }
        Some(None) => return Ok(id_or_name.to_owned()),
        None => {}
    }
    let mut statement =
        conn.prepare("SELECT id FROM api_keys WHERE name = ?1 AND revoked_at IS NULL LIMIT 2")?;
    let ids: Vec<String> = statement
        .query_map([id_or_name], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    match ids.as_slice() {
        [id] => Ok(id.clone()),
        [] => Err(StoreError::NotFound(format!(
            "no active API key with id or name {id_or_name}"
        ))),
        _ => Err(StoreError::Conflict(format!(
            "several active API keys are named {id_or_name}; name one by its id"
        ))),
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
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].0, hash_key(&text));
        assert_eq!(&*active[0].1.id, created.row.id.as_str());
        store.revoke_key("ci").unwrap();
        assert!(store.active_keys().unwrap().is_empty());
        assert!(store.list_keys().unwrap()[0].revoked_at.is_some());
        assert!(store.revoke_key("nope").is_err());
        store.revoke_key(&created.row.id).unwrap();
    }

    /// Rotation: a new key under the old name, then revoking "the old one" by name must not
    /// take the new one with it.
    #[test]
    fn revoking_by_a_name_revokes_one_key_and_never_guesses() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 2, MasterKey::generate()).unwrap();
        let old = store.create_key("ci").unwrap();
        let new = store.create_key("ci").unwrap();
        assert!(
            matches!(store.revoke_key("ci"), Err(StoreError::Conflict(_))),
            "two active keys share the name"
        );
        assert_eq!(store.active_keys().unwrap().len(), 2, "nothing revoked");
        store.revoke_key(&old.row.id).unwrap();
        let active = store.active_keys().unwrap();
        assert_eq!(active.len(), 1);
        assert_eq!(&*active[0].1.id, new.row.id.as_str());
        assert_eq!(
            store.revoke_key("ci").unwrap(),
            new.row.id,
            "now one key has it"
        );
        assert!(store.active_keys().unwrap().is_empty());
    }
}
