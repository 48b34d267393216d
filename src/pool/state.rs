//! The store as the actors' [`PoolStateSink`]: every change of an account's health or quota is
//! written to its `account_pool` row (through `Store::run`, never on an arbiter thread).

use futures_util::future::BoxFuture;
use relay_actors::{AccountId, PoolRecord, PoolStateSink, SourceError};
use slog::{warn, Logger};

use crate::store::{Operation, Store};

pub struct StorePoolState {
    pub store: Store,
    pub log: Logger,
}

impl PoolStateSink for StorePoolState {
    fn save(
        &self,
        id: AccountId,
        record: PoolRecord,
    ) -> BoxFuture<'static, Result<(), SourceError>> {
        let store = self.store.clone();
        let log = self.log.clone();
        Box::pin(async move {
            let account = id.to_string();
            store
                .run(Operation::Write, move |s| {
                    s.save_pool_state(id.as_str(), &record)
                })
                .await
                .map_err(|e| {
                    warn!(log, "could not save an account's pool state";
                        "account_id" => account, "error" => e.to_string());
                    SourceError(e.to_string())
                })
        })
    }
}
