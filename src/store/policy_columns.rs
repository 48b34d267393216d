//! How a key's or a tenant's policy is kept in columns, for every table that keeps one: the
//! limits (`NULL` or 0 for none) and model lists as JSON text. A leaf: keys, tenants and their
//! updates read and write these columns only through here, so a new limit kind is one more
//! entry in [`LIMIT_COLUMNS`] (and a migration) and the compiler points at the rest.

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

use crate::domain::Limits;

/// How many kinds of limit there are: one column each.
const LIMIT_KINDS: usize = 5;

/// The limit columns, in the order [`limits_at`] reads them and [`column_values`] gives them.
const LIMIT_COLUMNS: [&str; LIMIT_KINDS] = [
    "rpm",
    "burst",
    "max_concurrent",
    "daily_tokens",
    "monthly_tokens",
];

/// The limit only a key keeps: a tenant has no burst (its keys each have their own).
const KEY_ONLY: &str = "burst";

/// A table that keeps limits: `api_keys` keeps every one, `tenants` all but [`KEY_ONLY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LimitTable {
    Keys,
    Tenants,
}

impl LimitTable {
    fn name(self) -> &'static str {
        match self {
            LimitTable::Keys => "api_keys",
            LimitTable::Tenants => "tenants",
        }
    }

    fn keeps(self, column: &str) -> bool {
        self == LimitTable::Keys || column != KEY_ONLY
    }

    /// The limit columns of this table, aliased `alias` in a query, as [`limits_at`] reads
    /// them: `NULL` for a limit the table does not keep.
    pub(super) fn select(self, alias: &str) -> String {
        LIMIT_COLUMNS
            .map(|column| {
                if self.keeps(column) {
                    format!("{alias}.{column}")
                } else {
                    "NULL".to_owned()
                }
            })
            .join(", ")
    }

    /// Writes `limits` into the row `id` (a limit the table does not keep is left out).
    pub(super) fn write(
        self,
        conn: &Connection,
        id: &str,
        limits: &Limits,
    ) -> rusqlite::Result<()> {
        let kept: Vec<(&str, Option<i64>)> = LIMIT_COLUMNS
            .into_iter()
            .zip(column_values(limits))
            .filter(|(column, _)| self.keeps(column))
            .collect();
        let assignments: Vec<String> = (kept.iter().enumerate())
            .map(|(i, (column, _))| format!("{column} = ?{}", i + 2))
            .collect();
        let sql = format!(
            "UPDATE {} SET {} WHERE id = ?1",
            self.name(),
            assignments.join(", ")
        );
        let id = Value::from(id.to_owned());
        let values = kept.into_iter().map(|(_, value)| Value::from(value));
        conn.execute(&sql, params_from_iter(std::iter::once(id).chain(values)))?;
        Ok(())
    }
}

/// The limits as the columns keep them, in [`LIMIT_COLUMNS`] order.
fn column_values(limits: &Limits) -> [Option<i64>; LIMIT_KINDS] {
    let Limits {
        rpm,
        burst,
        max_concurrent,
        daily_tokens,
        monthly_tokens,
    } = *limits;
    [
        rpm.map(i64::from),
        burst.map(i64::from),
        max_concurrent.map(i64::from),
        daily_tokens.map(clamp),
        monthly_tokens.map(clamp),
    ]
}

/// Reads the limit columns ([`LimitTable::select`]) starting at column `first`.
pub(super) fn limits_at(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Limits> {
    let positive = |i: usize| -> rusqlite::Result<Option<i64>> {
        Ok(row.get::<_, Option<i64>>(first + i)?.filter(|n| *n > 0))
    };
    let narrow = |n: i64| u32::try_from(n).ok();
    Ok(Limits {
        rpm: positive(0)?.and_then(narrow),
        burst: positive(1)?.and_then(narrow),
        max_concurrent: positive(2)?.and_then(narrow),
        daily_tokens: positive(3)?.map(|n| n as u64),
        monthly_tokens: positive(4)?.map(|n| n as u64),
    })
}

/// SQLite integers are signed; a quota beyond `i64::MAX` tokens is as good as none.
pub(super) fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

pub(super) fn parse_list(text: Option<String>) -> Option<Vec<String>> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

#[cfg(test)]
mod tests {
    use crate::domain::{KeySettings, Limits, TenantSettings};
    use crate::store::{MasterKey, NewKey, NewTenant, Store};

    fn every_limit() -> Limits {
        Limits {
            rpm: Some(10),
            burst: Some(20),
            max_concurrent: Some(3),
            daily_tokens: Some(4_000),
            monthly_tokens: Some(u64::MAX),
        }
    }

    /// Every limit kind is written and read back, on creation and on update; a tenant keeps no
    /// burst.
    #[test]
    fn every_limit_is_kept_and_a_tenant_keeps_no_burst() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 2, MasterKey::generate()).unwrap();
        let stored = Limits {
            monthly_tokens: Some(i64::MAX as u64),
            ..every_limit()
        };
        let key = NewKey {
            name: "k".into(),
            limits: every_limit(),
            ..NewKey::default()
        };
        assert_eq!(store.create_key_with(&key).unwrap().row.limits, stored);
        assert_eq!(store.active_keys().unwrap()[0].1.limits, stored);
        let cleared = store
            .update_key("k", |now| {
                Ok(KeySettings {
                    limits: Limits::default(),
                    ..now.clone()
                })
            })
            .unwrap()
            .unwrap();
        assert_eq!(cleared.limits, Limits::default());

        let tenant = NewTenant {
            name: "t".into(),
            limits: every_limit(),
            ..NewTenant::default()
        };
        let without_burst = Limits {
            burst: None,
            ..stored.clone()
        };
        assert_eq!(store.create_tenant(&tenant).unwrap().limits, without_burst);
        let settings = TenantSettings {
            limits: Limits {
                rpm: Some(5),
                ..every_limit()
            },
            hidden_models: Vec::new(),
        };
        let updated = store.update_tenant("t", |_| Ok(settings)).unwrap().unwrap();
        assert_eq!(updated.limits.rpm, Some(5));
        assert_eq!(updated.limits.burst, None);
        assert_eq!(store.list_tenants().unwrap()[0].limits, updated.limits);
    }
}
