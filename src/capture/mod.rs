//! Content capture: the request and response bodies of one tenant's or one key's calls, for a
//! limited time, sealed with the master key in a file of their own. Off unless
//! `audit.capture.enabled`, and even then only while an operator's capture runs.
//!
//! | file         | owns                                                                |
//! |--------------|---------------------------------------------------------------------|
//! | `rules.rs`   | the captures running now, as the request path asks them (pure)      |
//! | `db.rs`      | the capture file (`capture.db`, 0600) and its rules                 |
//! | `records.rs` | captured calls, sealed and opened                                   |
//! | `tee.rs`     | what a captured call keeps while it runs                            |
//! | `writer.rs`  | the thread that seals and writes records, and prunes old ones       |
//! | `ops.rs`     | start, stop, read: the checks the admin API and the CLI share        |
//! | `acts.rs`    | the audited acts (start, stop, read), recorded in one place         |
//! | `metrics.rs` | `capture_records_total`                                             |
//!
//! The request path asks [`Capture::tee`] one question: an atomic load of the set of running
//! captures, empty in the usual case, so a call outside every capture allocates and copies
//! nothing. A captured call keeps a handle on its request body and a bounded copy of its answer;
//! its record goes to the writer's thread when the call ends, never awaited.

pub mod acts;
pub mod db;
mod metrics;
pub mod ops;
pub mod records;
pub mod rules;
pub mod tee;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use actix_web::rt::task::JoinHandle;
use arc_swap::ArcSwap;
use bytes::Bytes;
use slog::{warn, Logger};

pub use self::db::{CaptureDb, RuleRow};
use self::metrics::CaptureMetrics;
pub use self::records::Resealed;
use self::rules::ActiveRules;
use self::tee::Sink;
pub use self::tee::Tee;
use crate::bounds::Invalid;
use crate::settings::Settings;
use crate::store::{CryptoError, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "Content capture is turned off on this relay: set audit.capture.enabled = true (and \
         restart) before starting a capture."
    )]
    Disabled,
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the capture file cannot be used: {0}")]
    Unusable(String),
    #[error("capture file: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("capture file connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("a captured record could not be opened: {0}")]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CaptureError {
    /// There is no capture file: capture was never enabled where it would be.
    pub fn no_file() -> CaptureError {
        CaptureError::NotFound(
            "No capture exists: content capture was never turned on here.".to_owned(),
        )
    }

    /// A short word for what went wrong, as audit lines and error bodies name it.
    pub fn code(&self) -> &'static str {
        match self {
            CaptureError::Disabled => "capture_disabled",
            CaptureError::Invalid(_) => "invalid_value",
            CaptureError::NotFound(_) => "not_found",
            CaptureError::Conflict(_) => "conflict",
            _ => "internal_error",
        }
    }
}

/// The capture side of the relay; cheap to clone, built once at startup.
#[derive(Clone)]
pub struct Capture(Arc<Inner>);

struct Inner {
    /// Open when capture is enabled or a capture file from earlier exists (to list and read it).
    db: Option<CaptureDb>,
    store: Store,
    active: ArcSwap<ActiveRules>,
    /// The writer's queue; only when capture is enabled.
    sink: Option<Arc<Sink>>,
    response_limit: usize,
    log: Logger,
}

impl Capture {
    /// Opens the capture file beside the store when capture is enabled (or a file exists), reads
    /// the captures running now and starts the writer; registers `capture_records_total`.
    pub fn start(
        settings: &Settings,
        store: &Store,
        registry: &mut prometheus_client::registry::Registry,
        log: &Logger,
    ) -> Result<Capture, CaptureError> {
        let metrics = CaptureMetrics::register(registry);
        let capture = &settings.audit.capture;
        let path = db::path_beside(&settings.store.path);
        let db = match capture.enabled || path.exists() {
            true => Some(CaptureDb::open(&path)?),
            false => None,
        };
        let sink = match (&db, capture.enabled) {
            (Some(db), true) => Some(Arc::new(
                writer::spawn(writer::WriterParts {
                    db: db.clone(),
                    store: store.clone(),
                    retention_days: capture.retention_days,
                    metrics,
                    log: log.clone(),
                })
                .map_err(|e| CaptureError::Unusable(format!("cannot start its writer: {e}")))?,
            )),
            _ => None,
        };
        let capture = Capture(Arc::new(Inner {
            db,
            store: store.clone(),
            active: ArcSwap::default(),
            sink,
            response_limit: capture.max_response_bytes,
            log: log.clone(),
        }));
        capture.reread_blocking()?;
        Ok(capture)
    }

    /// The capture file, when there is one.
    pub fn db(&self) -> Option<&CaptureDb> {
        self.0.db.as_ref()
    }

    /// The store whose master key seals the records.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// The tee of a call of `key_id` (of `tenant`) when a running capture covers it; `None` —
    /// without allocating — otherwise. `body` is the request as read.
    pub fn tee(
        &self,
        key_id: &Arc<str>,
        tenant: Option<&str>,
        request_id: &str,
        body: &Bytes,
    ) -> Option<Tee> {
        let active = self.0.active.load();
        if active.is_empty() {
            return None;
        }
        let sink = self.0.sink.as_ref()?;
        let now = crate::store::now_unix();
        let rule = active.matching(now, key_id, tenant)?;
        let record = tee::started(Arc::clone(&rule.id), request_id, tenant, key_id, body, now);
        Some(Tee::new(record, self.0.response_limit, Arc::clone(sink)))
    }

    /// Reads the running captures again (after a start or stop, and every sync interval, which
    /// is how the server learns of the CLI's).
    pub async fn reread(&self) {
        let capture = self.clone();
        let read = actix_web::web::block(move || capture.reread_blocking()).await;
        let error = match read {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        warn!(self.0.log, "could not read the running captures"; "error" => error);
    }

    fn reread_blocking(&self) -> Result<(), CaptureError> {
        // Without the writer nothing is captured: the set stays empty.
        let (Some(db), Some(_)) = (&self.0.db, &self.0.sink) else {
            return Ok(());
        };
        let rules = db.active_rules(crate::store::now_unix())?;
        self.0.active.store(Arc::new(ActiveRules::new(rules)));
        Ok(())
    }

    /// Waits, at most `timeout`, until every record queued so far is in the capture file: a
    /// graceful stop calls it, so the calls it finished keep their records. False when the
    /// writer did not say so in time.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let Some(sink) = self.0.sink.clone() else {
            return true;
        };
        let flushed = actix_web::web::block(move || {
            let (done, written) = std::sync::mpsc::channel();
            sink.queue.send(tee::Job::Flush(done)).is_ok() && written.recv_timeout(timeout).is_ok()
        });
        flushed.await.unwrap_or(false)
    }

    /// Re-reads the running captures every `interval`, while capture is enabled.
    pub fn spawn_reread(&self, interval: Duration) -> Option<JoinHandle<()>> {
        self.0.sink.as_ref()?;
        let capture = self.clone();
        Some(actix_web::rt::spawn(async move {
            let mut ticks = actix_web::rt::time::interval(interval);
            loop {
                ticks.tick().await;
                capture.reread().await;
            }
        }))
    }
}
