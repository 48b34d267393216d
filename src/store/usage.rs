//! Token usage per key and tenant and UTC day: what quotas count, persisted so a restart does
//! not reset them. Months are the sums of their days.

use rusqlite::params;

use super::policy_columns::clamp;
use super::{Store, StoreError};
use crate::domain::Scope;

/// Requests and tokens to add to one subject's day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub scope: Scope,
    pub subject: String,
    pub day: String,
    pub requests: u64,
    pub tokens: crate::domain::Usage,
}

/// Tokens a subject used today and this month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageTotals {
    pub scope: Scope,
    pub subject: String,
    pub day_tokens: u64,
    pub month_tokens: u64,
}

impl Store {
    /// Adds one finished request's tokens to a subject's `day` (`YYYY-MM-DD`).
    pub fn add_usage(
        &self,
        scope: Scope,
        subject: &str,
        day: &str,
        tokens: crate::domain::Usage,
    ) -> Result<(), StoreError> {
        let row = UsageRow {
            scope,
            subject: subject.to_owned(),
            day: day.to_owned(),
            requests: 1,
            tokens,
        };
        self.add_usage_rows(std::slice::from_ref(&row))
    }

    /// Adds finished requests' tokens, summed per subject and day, in one transaction: under
    /// load the usage writer hands over everything recorded since its last write.
    pub fn add_usage_rows(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut add = tx.prepare_cached(
                "INSERT INTO usage_daily (scope, subject, day, requests, input_tokens, output_tokens, total_tokens)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (scope, subject, day) DO UPDATE SET
                    requests = requests + excluded.requests,
                    input_tokens = input_tokens + excluded.input_tokens,
                    output_tokens = output_tokens + excluded.output_tokens,
                    total_tokens = total_tokens + excluded.total_tokens",
            )?;
            for row in rows {
                add.execute(params![
                    row.scope.as_str(),
                    row.subject,
                    row.day,
                    clamp(row.requests),
                    clamp(row.tokens.input_tokens),
                    clamp(row.tokens.output_tokens),
                    clamp(row.tokens.total_tokens)
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every subject's tokens on `day` and in `month` (`YYYY-MM`).
    pub fn usage_totals(&self, day: &str, month: &str) -> Result<Vec<UsageTotals>, StoreError> {
        let conn = self.conn()?;
        let mut statement = conn.prepare(
            "SELECT scope, subject,
                    SUM(CASE WHEN day = ?1 THEN total_tokens ELSE 0 END),
                    SUM(total_tokens)
             FROM usage_daily WHERE substr(day, 1, 7) = ?2 GROUP BY scope, subject",
        )?;
        let rows = statement.query_map(params![day, month], |row| {
            let scope: String = row.get(0)?;
            let day: i64 = row.get(2)?;
            let month: i64 = row.get(3)?;
            Ok((scope, row.get::<_, String>(1)?, day, month))
        })?;
        let mut totals = Vec::new();
        for row in rows {
            let (scope, subject, day, month) = row?;
            if let Some(scope) = Scope::parse(&scope) {
                totals.push(UsageTotals {
                    scope,
                    subject,
                    day_tokens: day.max(0) as u64,
                    month_tokens: month.max(0) as u64,
                });
            }
        }
        Ok(totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Usage;
    use crate::store::MasterKey;

    #[test]
    fn usage_adds_up_per_day_and_month() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 2, MasterKey::generate()).unwrap();
        let tokens = |total| Usage {
            input_tokens: 1,
            output_tokens: total - 1,
            total_tokens: total,
            ..Usage::default()
        };
        store
            .add_usage(Scope::Key, "k1", "2026-03-01", tokens(10))
            .unwrap();
        store
            .add_usage(Scope::Key, "k1", "2026-03-02", tokens(5))
            .unwrap();
        store
            .add_usage(Scope::Key, "k1", "2026-03-02", tokens(7))
            .unwrap();
        store
            .add_usage(Scope::Key, "k1", "2026-02-28", tokens(100))
            .unwrap();
        store
            .add_usage(Scope::Tenant, "t1", "2026-03-02", tokens(3))
            .unwrap();
        let mut totals = store.usage_totals("2026-03-02", "2026-03").unwrap();
        totals.sort_by_key(|t| t.scope);
        assert_eq!(
            totals,
            vec![
                UsageTotals {
                    scope: Scope::Key,
                    subject: "k1".into(),
                    day_tokens: 12,
                    month_tokens: 22
                },
                UsageTotals {
                    scope: Scope::Tenant,
                    subject: "t1".into(),
                    day_tokens: 3,
                    month_tokens: 3
                },
            ]
        );
    }
}
