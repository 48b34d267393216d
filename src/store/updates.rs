//! Changes to existing tenants and keys. Each update reads the current row, lets the caller
//! apply and validate its change, and writes the result in one immediate transaction, so two
//! operators changing different fields at once do not undo each other.

use rusqlite::{params, TransactionBehavior};

use super::keys::{live_key_id, ApiKeyRow};
use super::policy_columns::{json_list, LimitTable};
use super::tenants::{tenant_id, TenantRow};
use super::{Store, StoreError};
use crate::bounds::Invalid;
use crate::domain::{KeySettings, TenantSettings};

/// The outcome of an update the store could carry out: the new row, or why the change itself
/// was refused.
pub type Updated<T> = Result<T, Invalid>;

impl Store {
    /// Changes a tenant (by id or name) to what `change` makes of its current row.
    pub fn update_tenant(
        &self,
        id_or_name: &str,
        change: impl FnOnce(&TenantRow) -> Result<TenantSettings, Invalid>,
    ) -> Result<Updated<TenantRow>, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id = tenant_id(&tx, id_or_name)?;
        let current = self.tenant(&tx, &id)?;
        let new = match change(&current) {
            Ok(new) => new,
            Err(invalid) => return Ok(Err(invalid)),
        };
        tx.execute(
            "UPDATE tenants SET hidden_models = ?2 WHERE id = ?1",
            params![id, json_list(&new.hidden_models)],
        )?;
        LimitTable::Tenants.write(&tx, &id, &new.limits)?;
        let row = self.tenant(&tx, &id)?;
        tx.commit()?;
        Ok(Ok(row))
    }

    /// Changes a key that is not revoked (by id, or by a name only one such key has) to what
    /// `change` makes of its current settings.
    pub fn update_key(
        &self,
        id_or_name: &str,
        change: impl FnOnce(&KeySettings) -> Result<KeySettings, Invalid>,
    ) -> Result<Updated<ApiKeyRow>, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id = live_key_id(&tx, id_or_name)?;
        let row = self.key_row(&tx, &id)?;
        let current = KeySettings {
            limits: row.limits,
            models: row.models,
            expires_at: row.expires_at,
        };
        let new = match change(&current) {
            Ok(new) => new,
            Err(invalid) => return Ok(Err(invalid)),
        };
        tx.execute(
            "UPDATE api_keys SET models = ?2, expires_at = ?3 WHERE id = ?1",
            params![id, new.models.as_deref().map(json_list), new.expires_at],
        )?;
        LimitTable::Keys.write(&tx, &id, &new.limits)?;
        let row = self.key_row(&tx, &id)?;
        tx.commit()?;
        Ok(Ok(row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Limits;
    use crate::store::{MasterKey, NewKey, NewTenant};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 2, MasterKey::generate()).unwrap();
        (dir, store)
    }

    #[test]
    fn a_key_update_is_written_and_the_key_ring_sees_it() {
        let (_dir, store) = store();
        let created = store.create_key("ci").unwrap();
        let updated = store
            .update_key("ci", |now| {
                let mut new = now.clone();
                new.limits.rpm = Some(7);
                new.models = Some(vec!["gpt-5.5".into()]);
                Ok(new)
            })
            .unwrap()
            .unwrap();
        assert_eq!(updated.id, created.row.id);
        assert_eq!(updated.limits.rpm, Some(7));
        let (_, policy) = store.active_keys().unwrap().pop().unwrap();
        assert_eq!(policy.limits.rpm, Some(7));
        assert_eq!(policy.models, Some(vec!["gpt-5.5".to_owned()]));
    }

    #[test]
    fn ambiguous_revoked_and_unknown_keys_are_refused() {
        let (_dir, store) = store();
        let first = store.create_key("twin").unwrap();
        store.create_key("twin").unwrap();
        let same = |now: &KeySettings| Ok(now.clone());
        assert!(matches!(
            store.update_key("twin", same),
            Err(StoreError::Conflict(_))
        ));
        assert!(store.update_key(&first.row.id, same).unwrap().is_ok());
        store.revoke_key(&first.row.id).unwrap();
        assert!(matches!(
            store.update_key(&first.row.id, same),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store.update_key("nobody", same),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn a_tenant_update_reaches_its_keys_and_a_refused_change_writes_nothing() {
        let (_dir, store) = store();
        let tenant = NewTenant {
            name: "team".into(),
            ..NewTenant::default()
        };
        store.create_tenant(&tenant).unwrap();
        let key = NewKey {
            name: "k".into(),
            tenant: Some("team".into()),
            ..NewKey::default()
        };
        store.create_key_with(&key).unwrap();
        let refused = store
            .update_tenant("team", |_| {
                Err(Invalid {
                    field: "limits",
                    reason: "no".into(),
                })
            })
            .unwrap();
        assert!(refused.is_err());
        let row = store
            .update_tenant("team", |_| {
                Ok(TenantSettings {
                    limits: Limits {
                        max_concurrent: Some(3),
                        ..Limits::default()
                    },
                    hidden_models: vec!["gpt-5.2".into()],
                })
            })
            .unwrap()
            .unwrap();
        assert_eq!(row.limits.max_concurrent, Some(3));
        let (_, policy) = store.active_keys().unwrap().pop().unwrap();
        let tenant = policy.tenant.unwrap();
        assert_eq!(tenant.limits.max_concurrent, Some(3));
        assert_eq!(tenant.hidden_models, ["gpt-5.2"]);
    }
}
