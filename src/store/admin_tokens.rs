//! Bearer tokens of the admin plane: shown once at creation, stored as SHA-256 with a public
//! prefix, each with a scope. A `read` token may look; a `write` token may also change things.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use rusqlite::params;
use secrecy::SecretString;

use super::keys::{hash_key, KeyHash};
use super::{now_unix, Store, StoreError};

/// Every admin token starts with this, so secret scanners and people recognise it.
pub const ADMIN_TOKEN_PREFIX: &str = "sk-relay-admin-";
const PUBLIC_PREFIX_LEN: usize = ADMIN_TOKEN_PREFIX.len() + 6;

/// What an admin token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminScope {
    Read,
    Write,
}

impl AdminScope {
    pub fn parse(name: &str) -> Option<AdminScope> {
        match name {
            "read" => Some(AdminScope::Read),
            "write" => Some(AdminScope::Write),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AdminScope::Read => "read",
            AdminScope::Write => "write",
        }
    }
}

/// A token as listed: never the token itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdminTokenRow {
    pub id: String,
    pub name: String,
    pub scope: AdminScope,
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A token just created: the only time its text exists.
pub struct CreatedAdminToken {
    pub row: AdminTokenRow,
    pub token: SecretString,
}

/// An active token as the server authenticates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveAdminToken {
    pub hash: KeyHash,
    pub id: String,
    /// The operator's name for it (the audit trail names the actor by id and name).
    pub name: String,
    pub scope: AdminScope,
}

impl Store {
    pub fn create_admin_token(
        &self,
        name: &str,
        scope: AdminScope,
    ) -> Result<CreatedAdminToken, StoreError> {
        let mut random = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let token = format!("{ADMIN_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
        let row = AdminTokenRow {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            scope,
            prefix: token[..PUBLIC_PREFIX_LEN].to_owned(),
            created_at: now_unix(),
            revoked_at: None,
        };
        self.conn()?.execute(
            "INSERT INTO admin_tokens (id, name, scope, prefix, hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                row.id,
                row.name,
                scope.name(),
                row.prefix,
                hash_key(&token),
                row.created_at
            ],
        )?;
        Ok(CreatedAdminToken {
            row,
            token: SecretString::from(token),
        })
    }

    pub fn list_admin_tokens(&self) -> Result<Vec<AdminTokenRow>, StoreError> {
        let conn = self.conn()?;
        let mut statement = conn.prepare(
            "SELECT id, name, scope, prefix, created_at, revoked_at FROM admin_tokens
             ORDER BY created_at, id",
        )?;
        let rows = statement.query_map([], |row| {
            let scope: String = row.get(2)?;
            Ok(AdminTokenRow {
                id: row.get(0)?,
                name: row.get(1)?,
                // The table's CHECK admits only the two names.
                scope: AdminScope::parse(&scope).unwrap_or(AdminScope::Read),
                prefix: row.get(3)?,
                created_at: row.get(4)?,
                revoked_at: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes a token by id or by name. Revoking twice is not an error.
    pub fn revoke_admin_token(&self, id_or_name: &str) -> Result<(), StoreError> {
        let changed = self.conn()?.execute(
            "UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, ?2)
             WHERE id = ?1 OR name = ?1",
            params![id_or_name, now_unix()],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!(
                "no admin token with id or name {id_or_name}"
            )));
        }
        Ok(())
    }

    /// Every token that may be used now.
    pub fn active_admin_tokens(&self) -> Result<Vec<ActiveAdminToken>, StoreError> {
        let conn = self.conn()?;
        let mut statement = conn
            .prepare("SELECT hash, id, scope, name FROM admin_tokens WHERE revoked_at IS NULL")?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
            ))
        })?;
        let mut tokens = Vec::new();
        for row in rows {
            let (hash, id, scope, name) = row?;
            if let (Ok(hash), Some(scope)) = (
                KeyHash::try_from(hash.as_slice()),
                AdminScope::parse(&scope),
            ) {
                tokens.push(ActiveAdminToken {
                    hash,
                    id,
                    name,
                    scope,
                });
            }
        }
        Ok(tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MasterKey;
    use secrecy::ExposeSecret;

    #[test]
    fn a_token_is_stored_as_a_hash_with_its_scope_and_can_be_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 2, MasterKey::generate()).unwrap();
        let created = store.create_admin_token("ops", AdminScope::Write).unwrap();
        let text = created.token.expose_secret().to_owned();
        assert!(text.starts_with(&created.row.prefix));
        assert!(text.starts_with(ADMIN_TOKEN_PREFIX));
        let active = store.active_admin_tokens().unwrap();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].hash, hash_key(&text));
        assert_eq!(active[0].scope, AdminScope::Write);
        store.revoke_admin_token("ops").unwrap();
        assert!(store.active_admin_tokens().unwrap().is_empty());
        assert!(store.list_admin_tokens().unwrap()[0].revoked_at.is_some());
        assert!(store.revoke_admin_token("nope").is_err());
    }
}
