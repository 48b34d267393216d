//! Tenants: the teams that own API keys and share their limits.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::policy_columns::{json_list, limits_at, parse_list, LimitTable};
use super::{now_unix, Store, StoreError};
use crate::domain::{Limits, TenantPolicy};

/// A tenant as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub limits: Limits,
    pub hidden_models: Vec<String>,
    pub created_at: i64,
    /// Keys of the tenant that are not revoked.
    pub active_keys: i64,
}

/// What a new tenant is made with.
#[derive(Debug, Clone, Default)]
pub struct NewTenant {
    pub name: String,
    pub limits: Limits,
    pub hidden_models: Vec<String>,
}

/// The columns [`tenant_row`] reads, from `tenants t`.
fn tenant_columns() -> String {
    let limits = LimitTable::Tenants.select("t");
    format!(
        "t.id, t.name, {limits}, t.hidden_models, t.created_at,
         (SELECT COUNT(*) FROM api_keys k WHERE k.tenant_id = t.id AND k.revoked_at IS NULL)"
    )
}

impl Store {
    pub fn create_tenant(&self, new: &NewTenant) -> Result<TenantRow, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let taken: Option<String> = tx
            .query_row("SELECT id FROM tenants WHERE name = ?1", [&new.name], |r| {
                r.get(0)
            })
            .optional()?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!(
                "a tenant named {} exists already",
                new.name
            )));
        }
        let id = uuid::Uuid::new_v4().to_string();
        tx.execute(
            "INSERT INTO tenants (id, name, hidden_models, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id, new.name, json_list(&new.hidden_models), now_unix()],
        )?;
        LimitTable::Tenants.write(&tx, &id, &new.limits)?;
        let row = self.tenant(&tx, &id)?;
        tx.commit()?;
        Ok(row)
    }

    pub fn list_tenants(&self) -> Result<Vec<TenantRow>, StoreError> {
        let conn = self.conn()?;
        let sql = format!("SELECT {} FROM tenants t ORDER BY t.name", tenant_columns());
        let mut statement = conn.prepare(&sql)?;
        let rows = statement.query_map([], tenant_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One tenant by id or name.
    pub fn get_tenant(&self, id_or_name: &str) -> Result<TenantRow, StoreError> {
        let conn = self.conn()?;
        let id = tenant_id(&conn, id_or_name)?;
        self.tenant(&conn, &id)
    }

    /// Deletes a tenant by id or name; refused while it still has keys that are not revoked.
    pub fn delete_tenant(&self, id_or_name: &str) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let id = tenant_id(&conn, id_or_name)?;
        let tenant = self.tenant(&conn, &id)?;
        if tenant.active_keys > 0 {
            return Err(StoreError::Conflict(format!(
                "tenant {} still has {} active API key(s); revoke them first",
                tenant.name, tenant.active_keys
            )));
        }
        conn.execute(
            "UPDATE api_keys SET tenant_id = NULL WHERE tenant_id = ?1",
            [&id],
        )?;
        conn.execute("DELETE FROM tenants WHERE id = ?1", [&id])?;
        Ok(())
    }

    pub(super) fn tenant(&self, conn: &Connection, id: &str) -> Result<TenantRow, StoreError> {
        let sql = format!("SELECT {} FROM tenants t WHERE t.id = ?1", tenant_columns());
        Ok(conn.query_row(&sql, [id], tenant_row)?)
    }
}

fn tenant_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TenantRow> {
    Ok(TenantRow {
        id: row.get(0)?,
        name: row.get(1)?,
        limits: limits_at(row, 2)?,
        hidden_models: parse_list(row.get(7)?).unwrap_or_default(),
        created_at: row.get(8)?,
        active_keys: row.get(9)?,
    })
}

/// The id of the tenant with this id or name.
pub(super) fn tenant_id(conn: &Connection, id_or_name: &str) -> Result<String, StoreError> {
    conn.query_row(
        "SELECT id FROM tenants WHERE id = ?1 OR name = ?1",
        [id_or_name],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("no tenant with id or name {id_or_name}")))
}

/// Every tenant's policy, by id (for the key ring).
pub(super) fn tenant_policies(
    conn: &Connection,
) -> Result<HashMap<String, Arc<TenantPolicy>>, StoreError> {
    let sql = format!("SELECT {} FROM tenants t", tenant_columns());
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map([], tenant_row)?;
    let mut tenants = HashMap::new();
    for row in rows {
        let row = row?;
        let policy = TenantPolicy {
            id: row.id.clone(),
            name: row.name.into(),
            limits: row.limits,
            hidden_models: row.hidden_models,
        };
        tenants.insert(row.id, Arc::new(policy));
    }
    Ok(tenants)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MasterKey, NewKey};

    #[test]
    fn a_tenant_owns_keys_and_is_deleted_only_without_active_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 2, MasterKey::generate()).unwrap();
        let limits = Limits {
            rpm: Some(60),
            daily_tokens: Some(1000),
            ..Limits::default()
        };
        let tenant = store
            .create_tenant(&NewTenant {
                name: "search".into(),
                limits: limits.clone(),
                hidden_models: vec!["gpt-5.2".into()],
            })
            .unwrap();
        assert_eq!(tenant.limits, limits);
        assert!(store
            .create_tenant(&NewTenant {
                name: "search".into(),
                ..NewTenant::default()
            })
            .is_err());
        let key = store
            .create_key_with(&NewKey {
                name: "ci".into(),
                tenant: Some("search".into()),
                models: Some(vec!["gpt-5.5".into()]),
                ..NewKey::default()
            })
            .unwrap();
        assert_eq!(key.row.tenant.as_deref(), Some("search"));
        let active = store.active_keys().unwrap();
        let policy = &active[0].1;
        assert_eq!(policy.tenant.as_ref().unwrap().hidden_models, ["gpt-5.2"]);
        assert_eq!(policy.models.as_deref(), Some(&["gpt-5.5".to_owned()][..]));
        assert!(store.delete_tenant("search").is_err());
        store.revoke_key("ci").unwrap();
        store.delete_tenant("search").unwrap();
        assert!(store.list_tenants().unwrap().is_empty());
    }
}
