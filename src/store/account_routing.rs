//! Each account's row in `account_pool` (schema 0004): the operator's routing parameters, and the
//! health and quota state the relay keeps across restarts. Routing changes bump
//! the account's version (the running server follows them); state saves do not (the server is
//! their author).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use relay_actors::{
    Breaker, Cooling, CoolingReason, Health, PoolRecord, QuotaSnapshot, QuotaWindow, RoutingParams,
};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::{json, Value};

use super::{now_unix, Store, StoreError};
use crate::bounds::{Invalid, ACCOUNT_IN_FLIGHT, PRIORITY, WEIGHT};

/// One account's pool row, as operators see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolRow {
    pub routing: RoutingParams,
    pub record: PoolRecord,
}

/// What `account set` changes; `None` leaves a parameter as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoutingChange {
    pub priority: Option<i32>,
    pub weight: Option<u32>,
    /// `Some(None)` returns to the `routing.max_in_flight` default.
    pub max_in_flight: Option<Option<u32>>,
}

impl RoutingChange {
    /// A change as an operator gave it (the CLI or the admin API), each value checked against
    /// its bound in [`crate::bounds`].
    pub fn checked(
        priority: Option<i64>,
        weight: Option<i64>,
        max_in_flight: Option<Option<i64>>,
    ) -> Result<RoutingChange, Invalid> {
        let in_flight = |max| ACCOUNT_IN_FLIGHT.narrow("max_in_flight", max);
        Ok(RoutingChange {
            priority: priority
                .map(|p| PRIORITY.narrow("priority", p))
                .transpose()?,
            weight: weight.map(|w| WEIGHT.narrow("weight", w)).transpose()?,
            max_in_flight: max_in_flight
                .map(|max| max.map(in_flight).transpose())
                .transpose()?,
        })
    }

    /// True when the change sets nothing.
    pub fn is_empty(&self) -> bool {
        self.priority.is_none() && self.weight.is_none() && self.max_in_flight.is_none()
    }
}

const COLUMNS: &str = "priority, weight, max_in_flight, cooling_until, cooling_reason,
    rate_limit_streak, breaker_failures, breaker_open_until, breaker_openings, quota";

impl Store {
    /// Saves an account's health and quota (the server's actor calls this on every change).
    /// An account removed meanwhile is not resurrected: nothing is written for it.
    pub fn save_pool_state(&self, id: &str, record: &PoolRecord) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let health = &record.health;
        let (open_until, failures) = match health.breaker {
            Breaker::Open { until } => (Some(millis(until)), 0),
            Breaker::Closed { failures } => (None, failures),
        };
        conn.execute(
            "INSERT INTO account_pool (account_id, cooling_until, cooling_reason, rate_limit_streak,
                 breaker_failures, breaker_open_until, breaker_openings, quota, state_updated_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 WHERE EXISTS (SELECT 1 FROM accounts WHERE id = ?1)
             ON CONFLICT (account_id) DO UPDATE SET cooling_until = excluded.cooling_until,
                 cooling_reason = excluded.cooling_reason, rate_limit_streak = excluded.rate_limit_streak,
                 breaker_failures = excluded.breaker_failures,
                 breaker_open_until = excluded.breaker_open_until,
                 breaker_openings = excluded.breaker_openings, quota = excluded.quota,
                 state_updated_at = excluded.state_updated_at",
            params![
                id,
                health.cooling.map(|c| millis(c.until)),
                health.cooling.map(|c| c.reason.name()),
                health.rate_limit_streak,
                failures,
                open_until,
                health.openings,
                record.quota.as_ref().map(quota_json),
                now_unix()
            ],
        )?;
        Ok(())
    }

    /// Changes an account's routing parameters (`id`: relay or ChatGPT account id) and bumps its
    /// version so that a running server picks them up.
    pub fn set_routing(&self, id: &str, change: RoutingChange) -> Result<String, StoreError> {
        let mut conn = self.conn()?;
        // The write lock at once: this reads, then writes, while the server may be writing; a
        // deferred transaction overtaken that way fails without waiting.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let account: Option<String> = tx
            .query_row(
                "SELECT id FROM accounts WHERE id = ?1 OR chatgpt_account_id = ?1",
                [id],
                |row| row.get(0),
            )
            .optional()?;
        let Some(account) = account else {
            return Err(StoreError::NotFound(format!("no account with id {id}")));
        };
        tx.execute(
            "INSERT INTO account_pool (account_id) VALUES (?1) ON CONFLICT DO NOTHING",
            [&account],
        )?;
        if let Some(priority) = change.priority {
            tx.execute(
                "UPDATE account_pool SET priority = ?2 WHERE account_id = ?1",
                params![account, priority],
            )?;
        }
        if let Some(weight) = change.weight {
            tx.execute(
                "UPDATE account_pool SET weight = ?2 WHERE account_id = ?1",
                params![account, weight.max(1)],
            )?;
        }
        if let Some(max) = change.max_in_flight {
            tx.execute(
                "UPDATE account_pool SET max_in_flight = ?2 WHERE account_id = ?1",
                params![account, max],
            )?;
        }
        tx.execute(
            "UPDATE accounts SET version = version + 1, updated_at = ?2 WHERE id = ?1",
            params![account, now_unix()],
        )?;
        tx.commit()?;
        Ok(account)
    }

    /// An account's pool row (defaults when it has none).
    pub fn pool_row(&self, id: &str) -> Result<PoolRow, StoreError> {
        let conn = self.conn()?;
        pool_row(&conn, id)
    }
}

/// An account's pool row on an open connection (also used while loading credentials).
pub(super) fn pool_row(conn: &Connection, id: &str) -> Result<PoolRow, StoreError> {
    let row = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM account_pool WHERE account_id = ?1"),
            [id],
            row_of,
        )
        .optional()?;
    Ok(row.unwrap_or_default())
}

fn row_of(row: &Row<'_>) -> rusqlite::Result<PoolRow> {
    let routing = RoutingParams {
        priority: row.get(0)?,
        weight: row.get::<_, u32>(1)?.max(1),
        max_in_flight: row.get(2)?,
    };
    let cooling_until: Option<i64> = row.get(3)?;
    let cooling_reason: Option<String> = row.get(4)?;
    let cooling = match (
        cooling_until,
        cooling_reason.as_deref().and_then(CoolingReason::parse),
    ) {
        (Some(until), Some(reason)) => Some(Cooling {
            until: time(until),
            reason,
        }),
        _ => None,
    };
    let open_until: Option<i64> = row.get(7)?;
    let breaker = match open_until {
        Some(until) => Breaker::Open { until: time(until) },
        None => Breaker::Closed {
            failures: row.get(6)?,
        },
    };
    let health = Health {
        cooling,
        rate_limit_streak: row.get(5)?,
        breaker,
        openings: row.get(8)?,
    };
    let quota: Option<String> = row.get(9)?;
    let quota = quota.and_then(|text| quota_from_json(&text));
    Ok(PoolRow {
        routing,
        record: PoolRecord { health, quota },
    })
}

fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A stored time; out-of-range values (a corrupted row) clamp to the epoch rather than panic.
fn time(millis: i64) -> SystemTime {
    let since = Duration::from_millis(u64::try_from(millis).unwrap_or(0));
    UNIX_EPOCH.checked_add(since).unwrap_or(UNIX_EPOCH)
}

fn quota_json(quota: &QuotaSnapshot) -> String {
    let window = |w: &Option<QuotaWindow>| {
        w.map(|w| {
            json!({
                "used_percent": w.used_percent,
                "window_minutes": w.window_minutes,
                "resets_at": w.resets_at.map(millis),
            })
        })
    };
    json!({
        "primary": window(&quota.primary),
        "secondary": window(&quota.secondary),
        "observed_at": millis(quota.observed_at),
    })
    .to_string()
}

fn quota_from_json(text: &str) -> Option<QuotaSnapshot> {
    let value: Value = serde_json::from_str(text).ok()?;
    let window = |w: &Value| {
        Some(QuotaWindow {
            used_percent: w["used_percent"].as_f64()?,
            window_minutes: w["window_minutes"].as_u64(),
            resets_at: w["resets_at"].as_i64().map(time),
        })
    };
    Some(QuotaSnapshot {
        primary: window(&value["primary"]),
        secondary: window(&value["secondary"]),
        observed_at: time(value["observed_at"].as_i64()?),
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::domain::TokenSet;
    use crate::store::{MasterKey, NewAccount};
    use secrecy::SecretString;

    fn key() -> MasterKey {
        MasterKey::from_bytes(&[9; 32]).unwrap()
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 2, key()).unwrap();
        (dir, store)
    }

    /// An account with placeholder tokens, for the store's tests.
    pub(in crate::store) fn account(chatgpt_id: &str) -> NewAccount {
        NewAccount {
            chatgpt_account_id: chatgpt_id.to_owned(),
            label: None,
            email: None,
            plan: None,
            is_fedramp: false,
            token_expires_at: None,
            last_refresh: None,
            tokens: TokenSet {
                id_token: SecretString::from("id"),
                access_token: SecretString::from("at"),
                refresh_token: SecretString::from("rt"),
            },
        }
    }

    #[test]
    fn health_and_quota_survive_a_reopen_and_routing_changes_bump_the_version() {
        let (dir, store) = store();
        let (id, _) = store.import_account(&account("acct-1")).unwrap();
        let until = UNIX_EPOCH + Duration::from_millis(2_000_000_000_123);
        let record = PoolRecord {
            health: Health {
                cooling: Some(Cooling {
                    until,
                    reason: CoolingReason::UsageLimit,
                }),
                rate_limit_streak: 2,
                breaker: Breaker::Open { until },
                openings: 3,
            },
            quota: Some(QuotaSnapshot {
                primary: Some(QuotaWindow {
                    used_percent: 42.5,
                    window_minutes: Some(300),
                    resets_at: Some(until),
                }),
                secondary: None,
                observed_at: until,
            }),
        };
        let before = store.account_versions().unwrap();
        store.save_pool_state(&id, &record).unwrap();
        assert_eq!(
            store.account_versions().unwrap(),
            before,
            "saves are not changes"
        );
        let change = RoutingChange {
            priority: Some(4),
            weight: Some(2),
            max_in_flight: Some(Some(8)),
        };
        store.set_routing("acct-1", change).unwrap();
        assert_ne!(store.account_versions().unwrap(), before);
        drop(store);
        let store = Store::open(&dir.path().join("db"), 2, key()).unwrap();
        let creds = store.load_credentials(&id).unwrap().unwrap();
        assert_eq!(creds.pool, record);
        assert_eq!(
            creds.routing,
            RoutingParams {
                priority: 4,
                weight: 2,
                max_in_flight: Some(8)
            }
        );
    }

    #[test]
    fn a_removed_account_is_not_resurrected_by_a_late_save() {
        let (_dir, store) = store();
        let (id, _) = store.import_account(&account("acct-1")).unwrap();
        store.remove_account(&id).unwrap();
        store.save_pool_state(&id, &PoolRecord::default()).unwrap();
        assert_eq!(store.pool_row(&id).unwrap(), PoolRow::default());
        assert!(store.set_routing(&id, RoutingChange::default()).is_err());
    }
}
