//! One ring of active credentials, by the hash of their text: what the API-key ring and the
//! admin-token ring have in common.

use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard};

use crate::store::keys::hash_key;
use crate::store::KeyHash;

/// The active credentials of one kind, each with what it stands for (`V`). Replaced whole after
/// each read of the store; read by every request.
pub struct TokenRing<V> {
    entries: RwLock<HashMap<KeyHash, V>>,
}

impl<V> Default for TokenRing<V> {
    fn default() -> Self {
        TokenRing {
            entries: RwLock::new(HashMap::new()),
        }
    }
}

impl<V: Clone> TokenRing<V> {
    /// Replaces the whole set.
    pub fn replace(&self, entries: impl IntoIterator<Item = (KeyHash, V)>) {
        let entries = entries.into_iter().collect();
        *self.entries.write().unwrap_or_else(|e| e.into_inner()) = entries;
    }

    /// What a presented token stands for, if it is active.
    pub fn find(&self, presented: &str) -> Option<V> {
        self.read().get(&hash_key(presented)).cloned()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The set as it is now (a poisoned lock still holds a whole set: replacing is one store).
    pub(super) fn read(&self) -> RwLockReadGuard<'_, HashMap<KeyHash, V>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }
}
