//! The admin plane's credentials: admin tokens, each standing for its id and scope.

use std::sync::Arc;

use super::ring::TokenRing;
use crate::store::admin_tokens::{ActiveAdminToken, AdminScope};
use crate::store::{Operation, Store, StoreError};

/// Who is calling the admin plane: the token that authenticated the request.
#[derive(Debug, Clone)]
pub struct AdminPrincipal {
    pub token_id: Arc<str>,
    pub name: Arc<str>,
    pub scope: AdminScope,
}

/// The active admin tokens.
pub type AdminTokenRing = TokenRing<AdminPrincipal>;

impl TokenRing<AdminPrincipal> {
    /// Replaces the whole set with the tokens read from the store.
    pub fn replace_tokens(&self, tokens: Vec<ActiveAdminToken>) {
        self.replace(tokens.into_iter().map(|t| {
            let principal = AdminPrincipal {
                token_id: Arc::from(t.id),
                name: Arc::from(t.name),
                scope: t.scope,
            };
            (t.hash, principal)
        }));
    }

    /// Reads the active admin tokens from the store once.
    pub async fn load(&self, store: &Store) -> Result<(), StoreError> {
        let active = store
            .run(Operation::Sync, |s| s.active_admin_tokens())
            .await?;
        self.replace_tokens(active);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::keys::hash_key;

    #[test]
    fn only_active_tokens_authenticate_with_their_scope() {
        let ring = AdminTokenRing::default();
        ring.replace_tokens(vec![ActiveAdminToken {
            hash: hash_key("sk-relay-admin-good"),
            id: "t1".into(),
            name: "ops".into(),
            scope: AdminScope::Read,
        }]);
        let principal = ring.find("sk-relay-admin-good").unwrap();
        assert_eq!(principal.scope, AdminScope::Read);
        assert!(ring.find("sk-relay-admin-bad").is_none());
        ring.replace_tokens(Vec::new());
        assert!(ring.find("sk-relay-admin-good").is_none());
    }
}
