//! How a key's or a tenant's policy is kept in columns, for every table that keeps one: the five
//! limits (`NULL` or 0 for none) and model lists as JSON text. A leaf: keys, tenants, their
//! updates and the usage counters all write these columns.

use crate::domain::Limits;

/// Reads `rpm, burst, max_concurrent, daily_tokens, monthly_tokens` starting at column `first`.
pub(super) fn limits_at(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Limits> {
    let positive = |v: Option<i64>| v.filter(|n| *n > 0);
    Ok(Limits {
        rpm: positive(row.get(first)?).and_then(|n| u32::try_from(n).ok()),
        burst: positive(row.get(first + 1)?).and_then(|n| u32::try_from(n).ok()),
        max_concurrent: positive(row.get(first + 2)?).and_then(|n| u32::try_from(n).ok()),
        daily_tokens: positive(row.get(first + 3)?).map(|n| n as u64),
        monthly_tokens: positive(row.get(first + 4)?).map(|n| n as u64),
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
