//! `store_errors_total{operation}`: the store's faults met by the running server, counted in one
//! place ([`Store::run`]) by the kind of call that met them. An answer that is not a fault — a
//! row not found, a name already taken — is not counted.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::StoreError;

/// The kind of a store call, as `store_errors_total` labels it: a small fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A one-off read: an admin listing, the accounts' plans for the catalog, a refresh token.
    Read,
    /// A change: token usage, an account's pool state or rotated tokens, an operator's change.
    Write,
    /// The periodic re-read of the API keys, admin tokens and accounts.
    Sync,
}

impl Operation {
    const ALL: [Operation; 3] = [Operation::Read, Operation::Write, Operation::Sync];

    fn name(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::Sync => "sync",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

/// The store's error counts, shared by every clone of the store.
#[derive(Debug, Clone, Default)]
pub(super) struct StoreErrors(Family<OperationLabels, Counter>);

impl StoreErrors {
    /// Counts `error` if it is a fault of the store.
    pub(super) fn count(&self, operation: Operation, error: &StoreError) {
        if error.is_fault() {
            self.0
                .get_or_create(&OperationLabels {
                    operation: operation.name(),
                })
                .inc();
        }
    }

    /// Registers the family, every operation at 0 so a rate over it exists from the start.
    pub(super) fn register(&self, registry: &mut Registry) {
        for operation in Operation::ALL {
            let _ = self.0.get_or_create(&OperationLabels {
                operation: operation.name(),
            });
        }
        registry.register(
            "store_errors",
            "Store calls that failed with a fault of the store (SQLite, its connection pool, \
             sealing), by kind of call",
            self.0.clone(),
        );
    }
}

impl StoreError {
    /// Whether this is a fault of the store rather than an answer about its contents.
    fn is_fault(&self) -> bool {
        !matches!(self, StoreError::NotFound(_) | StoreError::Conflict(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::obs::metrics::{encode_text, registry};
    use crate::store::{MasterKey, Store};

    #[actix_web::test]
    async fn faults_are_counted_by_operation_and_answers_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 2, MasterKey::generate()).unwrap();
        let mut metrics = registry();
        store.register_metrics(&mut metrics);
        let fault = || StoreError::Blocking("gone".into());
        let _ = store
            .run(Operation::Write, move |_| Err::<(), _>(fault()))
            .await;
        let _ = store
            .run(Operation::Write, move |_| Err::<(), _>(fault()))
            .await;
        let _ = store
            .run(Operation::Read, |_| {
                Err::<(), _>(StoreError::NotFound("no such key".into()))
            })
            .await;
        let _ = store.run(Operation::Sync, |s| s.account_versions()).await;
        let text = encode_text(&metrics).unwrap();
        for (operation, count) in [("read", 0), ("write", 2), ("sync", 0)] {
            let line =
                format!("codex_relay_store_errors_total{{operation=\"{operation}\"}} {count}\n");
            assert!(text.contains(&line), "{line} in\n{text}");
        }
    }
}
