//! The one writer of token usage: takes what finished calls recorded, in order, and adds it to
//! the store. Whatever has queued up since its last write goes in the next one, summed per
//! subject and day, in one transaction, and writes are at least [`WRITE_INTERVAL`] apart — so
//! under load the store sees a few writes a second, not one per request. The counts that
//! quotas check live in memory and are always current; a shutdown waits for the last write.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use slog::{warn, Logger};
use tokio::sync::mpsc::UnboundedReceiver;

use super::{Pending, UsageRecord};
use crate::store::usage::UsageRow;
use crate::store::{Operation, Store};

/// Most records summed into one write.
const MAX_BATCH: usize = 4096;

/// The least time between two writes. A crash (not a shutdown) loses at most this much usage.
const WRITE_INTERVAL: Duration = Duration::from_millis(200);

/// Runs the writer for as long as the runtime lives. A failed write is logged and counted in
/// `errors` (`usage_writer_errors_total`); the in-memory counts stay right.
pub(super) fn spawn(
    mut usage: UnboundedReceiver<UsageRecord>,
    pending: Arc<Pending>,
    store: Store,
    errors: Counter,
    log: Logger,
) {
    actix_web::rt::spawn(async move {
        while let Some(first) = usage.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match usage.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
            let records = batch.len();
            let rows = summed(batch);
            if let Err(error) = store
                .run(Operation::Write, move |s| s.add_usage_rows(&rows))
                .await
            {
                errors.inc();
                warn!(log, "could not persist token usage"; "error" => error.to_string());
            }
            pending.done(records);
            actix_web::rt::time::sleep(WRITE_INTERVAL).await;
        }
    });
}

/// The records' requests and tokens summed per subject and day.
fn summed(records: Vec<UsageRecord>) -> Vec<UsageRow> {
    let mut rows: BTreeMap<(crate::domain::Scope, Arc<str>, String), UsageRow> = BTreeMap::new();
    for record in records {
        for (scope, subject) in record.subjects {
            let key = (scope, Arc::clone(&subject), record.day.clone());
            let row = rows.entry(key).or_insert_with(|| UsageRow {
                scope,
                subject: subject.to_string(),
                day: record.day.clone(),
                requests: 0,
                tokens: Default::default(),
            });
            // The counts are the upstream's: a sum past u64 is the largest count, never a panic.
            let (sum, add) = (&mut row.tokens, &record.usage);
            row.requests += 1;
            sum.input_tokens = sum.input_tokens.saturating_add(add.input_tokens);
            sum.output_tokens = sum.output_tokens.saturating_add(add.output_tokens);
            sum.total_tokens = sum.total_tokens.saturating_add(add.total_tokens);
        }
    }
    rows.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Scope;
    use crate::domain::Usage;

    fn record(subjects: &[(Scope, &str)], day: &str, total: u64) -> UsageRecord {
        UsageRecord {
            subjects: subjects
                .iter()
                .map(|(s, id)| (*s, Arc::from(*id)))
                .collect(),
            day: day.to_owned(),
            usage: Usage {
                input_tokens: total / 2,
                output_tokens: total - total / 2,
                total_tokens: total,
                ..Usage::default()
            },
        }
    }

    #[test]
    fn token_sums_past_u64_are_the_largest_count() {
        let rows = summed(vec![
            record(&[(Scope::Key, "k")], "2026-03-01", u64::MAX),
            record(&[(Scope::Key, "k")], "2026-03-01", u64::MAX),
        ]);
        assert_eq!(rows[0].tokens.total_tokens, u64::MAX);
        assert_eq!(rows[0].tokens.input_tokens, u64::MAX - 1);
    }

    #[test]
    fn records_are_summed_per_subject_and_day() {
        let rows = summed(vec![
            record(
                &[(Scope::Key, "k1"), (Scope::Tenant, "t")],
                "2026-03-01",
                10,
            ),
            record(&[(Scope::Key, "k2"), (Scope::Tenant, "t")], "2026-03-01", 4),
            record(&[(Scope::Key, "k1")], "2026-03-01", 6),
            record(&[(Scope::Key, "k1")], "2026-03-02", 1),
        ]);
        let seen: Vec<(Scope, &str, &str, u64, u64)> = rows
            .iter()
            .map(|r| {
                let (scope, subject, day) = (r.scope, r.subject.as_str(), r.day.as_str());
                (scope, subject, day, r.requests, r.tokens.total_tokens)
            })
            .collect();
        assert_eq!(
            seen,
            [
                (Scope::Key, "k1", "2026-03-01", 2, 16),
                (Scope::Key, "k1", "2026-03-02", 1, 1),
                (Scope::Key, "k2", "2026-03-01", 1, 4),
                (Scope::Tenant, "t", "2026-03-01", 2, 14),
            ]
        );
    }
}
