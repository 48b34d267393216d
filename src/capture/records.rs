//! Captured calls: a record's bodies are sealed with the master key (`store::crypto`'s envelope)
//! before they touch the capture file, the additional data binding each body to the record's
//! id and column, so a body moved to another record fails to open. Opened only for an admin
//! call with the write scope, or the CLI.

use bytes::Bytes;
use rusqlite::{params, OptionalExtension, Row};

use super::db::CaptureDb;
use super::CaptureError;
use crate::store::{sealed_by, MasterKey, Store};

/// One captured call as the request path hands it over, in the clear, to the writer.
#[derive(Debug)]
pub struct CapturedRecord {
    pub rule_id: std::sync::Arc<str>,
    pub request_id: String,
    pub captured_at: i64,
    pub tenant: Option<String>,
    pub key_id: std::sync::Arc<str>,
    pub stream: bool,
    /// The status the client got (0 when the call ended before any answer).
    pub status: u16,
    pub truncated: bool,
    /// The request body as the client sent it, once decoded.
    pub request: Bytes,
    /// The SSE bytes as relayed, or the JSON answer; bounded.
    pub response: Vec<u8>,
}

/// A record read back and opened.
#[derive(Debug, Clone)]
pub struct OpenedRecord {
    pub request_id: String,
    pub captured_at: i64,
    pub tenant: Option<String>,
    pub key_id: String,
    pub stream: bool,
    pub status: u16,
    pub truncated: bool,
    pub request: Vec<u8>,
    pub response: Vec<u8>,
}

const REQUEST: &str = "capture_request";
const RESPONSE: &str = "capture_response";

/// Most records one read returns.
pub const READ_LIMIT: i64 = 1000;

impl CaptureDb {
    /// Seals and writes `records` in one transaction.
    pub fn insert_records(
        &self,
        key: &MasterKey,
        records: &[CapturedRecord],
    ) -> Result<(), CaptureError> {
        let mut conn = self.pool.get()?;
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO capture_records (id, rule_id, request_id, captured_at, tenant, key_id,
                    stream, status, truncated, request, response)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for record in records {
                let id = uuid::Uuid::new_v4().to_string();
                insert.execute(params![
                    id,
                    &*record.rule_id,
                    record.request_id,
                    record.captured_at,
                    record.tenant,
                    &*record.key_id,
                    record.stream,
                    record.status,
                    record.truncated,
                    key.seal(&id, REQUEST, &record.request),
                    key.seal(&id, RESPONSE, &record.response),
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The records of capture `rule_id` (oldest first, at most [`READ_LIMIT`]), opened.
    pub fn open_records(
        &self,
        key: &Store,
        rule_id: &str,
    ) -> Result<Vec<OpenedRecord>, CaptureError> {
        self.get_rule(rule_id)?;
        let conn = self.pool.get()?;
        let mut query = conn.prepare(
            "SELECT id, request_id, captured_at, tenant, key_id, stream, status, truncated,
                    request, response
             FROM capture_records WHERE rule_id = ?1 ORDER BY captured_at, rowid LIMIT ?2",
        )?;
        let rows = query.query_map(params![rule_id, READ_LIMIT], sealed_row)?;
        rows.map(|row| row?.open(key)).collect()
    }

    /// The record of request `request_id` under capture `rule_id`, opened.
    pub fn open_record(
        &self,
        key: &Store,
        rule_id: &str,
        request_id: &str,
    ) -> Result<OpenedRecord, CaptureError> {
        let conn = self.pool.get()?;
        let sealed = conn
            .query_row(
                "SELECT id, request_id, captured_at, tenant, key_id, stream, status, truncated,
                        request, response
                 FROM capture_records WHERE rule_id = ?1 AND request_id = ?2",
                params![rule_id, request_id],
                sealed_row,
            )
            .optional()?;
        let not_found = || {
            CaptureError::NotFound(format!(
                "No record of request {request_id} in capture {rule_id}."
            ))
        };
        sealed.ok_or_else(not_found)?.open(key)
    }

    /// Deletes the records captured before `before` (unix seconds); returns how many.
    pub fn prune_records(&self, before: i64) -> Result<usize, CaptureError> {
        let conn = self.pool.get()?;
        Ok(conn.execute(
            "DELETE FROM capture_records WHERE captured_at < ?1",
            [before],
        )?)
    }
}

/// A record as the file holds it: its bodies sealed.
struct SealedRecord {
    id: String,
    clear: OpenedRecord,
}

impl SealedRecord {
    /// Opened with the key each body names, among those `store` knows.
    fn open(mut self, store: &Store) -> Result<OpenedRecord, CaptureError> {
        self.clear.request = store.open_sealed(&self.id, REQUEST, &self.clear.request)?;
        self.clear.response = store.open_sealed(&self.id, RESPONSE, &self.clear.response)?;
        Ok(self.clear)
    }
}

/// What a re-seal of the capture file did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resealed {
    /// Records now sealed under the new key.
    pub records: usize,
    /// Records no key `store` knows opens: left as they were.
    pub unreadable: usize,
}

impl CaptureDb {
    /// Seals every record not yet under `new` again under it, in one transaction: opened with
    /// the key each names among those `store` knows (a `store rekey` runs it before and after
    /// re-sealing the store, so records written meanwhile follow too). Run again, it skips what
    /// is done.
    pub fn reseal(&self, store: &Store, new: &MasterKey) -> Result<Resealed, CaptureError> {
        let mut conn = self.pool.get()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let rows: Vec<(String, Vec<u8>, Vec<u8>)> = {
            let mut query = tx.prepare("SELECT id, request, response FROM capture_records")?;
            let rows = query.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut done = Resealed::default();
        let new_id = new.id_hex();
        for (id, request, response) in rows {
            let under_new = |sealed: &[u8]| sealed_by(sealed).as_deref() == Some(new_id.as_str());
            if under_new(&request) && under_new(&response) {
                continue;
            }
            let opened = store
                .open_sealed(&id, REQUEST, &request)
                .and_then(|request| Ok((request, store.open_sealed(&id, RESPONSE, &response)?)));
            let Ok((request, response)) = opened else {
                done.unreadable += 1;
                continue;
            };
            tx.execute(
                "UPDATE capture_records SET request = ?2, response = ?3 WHERE id = ?1",
                params![
                    id,
                    new.seal(&id, REQUEST, &request),
                    new.seal(&id, RESPONSE, &response)
                ],
            )?;
            done.records += 1;
        }
        tx.commit()?;
        Ok(done)
    }
}

fn sealed_row(row: &Row) -> rusqlite::Result<SealedRecord> {
    Ok(SealedRecord {
        id: row.get(0)?,
        clear: OpenedRecord {
            request_id: row.get(1)?,
            captured_at: row.get(2)?,
            tenant: row.get(3)?,
            key_id: row.get(4)?,
            stream: row.get(5)?,
            status: row.get(6)?,
            truncated: row.get(7)?,
            request: row.get(8)?,
            response: row.get(9)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::db::NewRule;
    use crate::capture::rules::Subject;

    fn record(rule_id: &str, request: &'static [u8]) -> CapturedRecord {
        CapturedRecord {
            rule_id: rule_id.into(),
            request_id: "req-1".into(),
            captured_at: 100,
            tenant: None,
            key_id: "key-1".into(),
            stream: false,
            status: 200,
            truncated: false,
            request: Bytes::from_static(request),
            response: b"{\"output\":\"hello\"}".to_vec(),
        }
    }

    #[test]
    fn records_are_sealed_per_record_and_open_with_the_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let (db, rule) = db_with_rule(dir.path());
        let store = store_in(dir.path(), "relay.db");
        let key = store.sealing_key_now().unwrap();
        db.insert_records(&key, &[record(&rule, b"the secret prompt")])
            .unwrap();
        let opened = db.open_record(&store, &rule, "req-1").unwrap();
        assert_eq!(opened.request, b"the secret prompt");
        let other = store_in(dir.path(), "other.db");
        assert!(db.open_records(&other, &rule).is_err());
        // A body moved into another record does not open.
        db.insert_records(&key, &[record(&rule, b"other")]).unwrap();
        let conn = db.pool.get().unwrap();
        conn.execute(
            "UPDATE capture_records SET request = (SELECT request FROM capture_records
             WHERE rowid = 1) WHERE rowid = 2",
            [],
        )
        .unwrap();
        assert!(db.open_records(&store, &rule).is_err());
        assert_eq!(db.prune_records(101).unwrap(), 2);
    }

    /// A capture file in `dir` with one capture (on `key-1`), and that capture's id.
    fn db_with_rule(dir: &std::path::Path) -> (CaptureDb, String) {
        let db = CaptureDb::open(&dir.join("capture.db")).unwrap();
        let rule = db
            .insert_rule(&NewRule {
                subject: Subject::Key("key-1".into()),
                reason: None,
                started_by: "cli:test".into(),
                started_at: 0,
                ends_at: 1000,
            })
            .unwrap();
        (db, rule)
    }

    /// A store of its own, under a new key.
    fn store_in(dir: &std::path::Path, name: &str) -> Store {
        Store::open(&dir.join(name), 2, MasterKey::generate()).unwrap()
    }

    #[test]
    fn a_reseal_moves_every_record_to_the_new_key_once_and_counts_what_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let (db, rule) = db_with_rule(dir.path());
        let old = store_in(dir.path(), "relay.db");
        let stranger = MasterKey::generate();
        db.insert_records(&old.sealing_key_now().unwrap(), &[record(&rule, b"prompt")])
            .unwrap();
        db.insert_records(&stranger, &[record(&rule, b"lost")])
            .unwrap();
        let next = store_in(dir.path(), "next.db");
        let new = next.sealing_key_now().unwrap();
        let done = db.reseal(&old, &new).unwrap();
        assert_eq!((done.records, done.unreadable), (1, 1));
        // Run again: nothing left to move; the new key alone opens the record.
        let again = db.reseal(&old, &new).unwrap();
        assert_eq!((again.records, again.unreadable), (0, 1));
        let conn = db.pool.get().unwrap();
        conn.execute("DELETE FROM capture_records WHERE rowid = 2", [])
            .unwrap();
        let opened = db.open_records(&next, &rule).unwrap();
        assert_eq!(opened[0].request, b"prompt");
        assert!(db.open_records(&old, &rule).is_err());
    }
}
