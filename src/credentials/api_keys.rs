//! The data plane's credentials: API keys, each standing for its policy (its tenant's included).

use std::collections::HashSet;
use std::sync::Arc;

use super::ring::TokenRing;
use crate::domain::{KeyPolicy, Scope, Subject};
use crate::store::{KeyRecord, Operation, Store, StoreError};

/// The active API keys.
pub type KeyRing = TokenRing<Arc<KeyPolicy>>;

/// Who is calling the data plane: the API key that authenticated the request, with its policy.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: Arc<str>,
    pub policy: Arc<KeyPolicy>,
}

/// Why a presented key does not authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    /// No active key has this text.
    Unknown,
    /// The key exists but its expiry has passed.
    Expired,
}

impl TokenRing<Arc<KeyPolicy>> {
    /// Replaces the whole set with the keys read from the store.
    pub fn replace_keys(&self, keys: Vec<KeyRecord>) {
        self.replace(
            keys.into_iter()
                .map(|(hash, policy)| (hash, Arc::new(policy))),
        );
    }

    /// Reads the active API keys from the store once.
    pub async fn load(&self, store: &Store) -> Result<(), StoreError> {
        let active = store.run(Operation::Sync, |s| s.active_keys()).await?;
        self.replace_keys(active);
        Ok(())
    }

    /// The principal of a presented key; an unknown key is refused, an expired one says so.
    pub fn authenticate(&self, presented: &str, now_unix: i64) -> Result<Principal, KeyRefusal> {
        let policy = self.find(presented).ok_or(KeyRefusal::Unknown)?;
        if policy.is_expired(now_unix) {
            return Err(KeyRefusal::Expired);
        }
        Ok(Principal {
            key_id: Arc::clone(&policy.id),
            policy,
        })
    }

    /// Every key and tenant the ring's keys count against.
    pub fn subjects(&self) -> HashSet<Subject> {
        let mut subjects = HashSet::new();
        for policy in self.read().values() {
            subjects.insert((Scope::Key, Arc::clone(&policy.id)));
            if let Some(tenant) = &policy.tenant {
                subjects.insert((Scope::Tenant, Arc::from(tenant.id.as_str())));
            }
        }
        subjects
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TenantPolicy;
    use crate::store::keys::hash_key;

    #[test]
    fn only_active_keys_authenticate() {
        let ring = KeyRing::default();
        let policy = KeyPolicy::unrestricted("key-1");
        ring.replace_keys(vec![(hash_key("sk-relay-good"), policy)]);
        assert_eq!(
            &*ring.authenticate("sk-relay-good", 0).unwrap().key_id,
            "key-1"
        );
        assert!(ring.authenticate("sk-relay-bad", 0).is_err());
        ring.replace_keys(Vec::new());
        assert!(ring.authenticate("sk-relay-good", 0).is_err());
    }

    #[test]
    fn an_expired_key_is_refused_with_its_own_reason() {
        let ring = KeyRing::default();
        let mut policy = KeyPolicy::unrestricted("key-1");
        policy.expires_at = Some(100);
        ring.replace_keys(vec![(hash_key("sk-relay-old"), policy)]);
        assert!(ring.authenticate("sk-relay-old", 99).is_ok());
        let refusal = ring.authenticate("sk-relay-old", 100).unwrap_err();
        assert_eq!(refusal, KeyRefusal::Expired);
    }

    /// After a re-read, the governor forgets the rates of the subjects not named here.
    #[test]
    fn a_ring_names_its_keys_and_their_tenants() {
        let ring = KeyRing::default();
        let mut policy = KeyPolicy::unrestricted("key-1");
        policy.tenant = Some(Arc::new(TenantPolicy {
            id: "tenant-1".into(),
            name: "team".into(),
            limits: Default::default(),
            hidden_models: Vec::new(),
        }));
        ring.replace_keys(vec![(hash_key("sk-relay-a"), policy)]);
        let subjects = ring.subjects();
        assert_eq!(subjects.len(), 2);
        assert!(subjects.contains(&(Scope::Key, Arc::from("key-1"))));
        assert!(subjects.contains(&(Scope::Tenant, Arc::from("tenant-1"))));
        ring.replace_keys(Vec::new());
        assert!(ring.subjects().is_empty());
    }
}
