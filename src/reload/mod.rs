//! Reloading the settings of a running relay, on SIGHUP or `POST /admin/v1/reload`: the settings
//! file and the environment are read again and checked as at startup; what can change safely
//! ([`changes::LIVE`]: limits, the models offered, the routing parameters each request reads,
//! the log level, …) is put in force at once, and what cannot is named as needing a restart.
//! Invalid settings change nothing.
//!
//! Each part keeps its settings where its hot path reads them without a lock: the handlers load
//! the settings snapshot ([`LiveSettings`], an `ArcSwap`), the governor its limits (likewise), the
//! model registry rebuilds its catalog, the logger reads its level from an atomic. A reload swaps
//! each; a request already running finishes under the settings it started with.

pub mod changes;

use std::sync::Arc;

use actix_web::rt::signal::unix::{signal, Signal, SignalKind};
use arc_swap::ArcSwap;
use slog::{error, info, warn, Logger};

use self::changes::{compare, Changes};
use crate::governance::models::ModelRegistry;
use crate::governance::Governor;
use crate::obs::LogLevelSwitch;
use crate::settings::{Settings, SettingsError, SettingsSource};

/// The settings in force, shared by the handlers (`AppState`) and the reload that replaces them.
pub type LiveSettings = Arc<ArcSwap<Settings>>;

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}; nothing was changed")]
    Invalid(#[from] SettingsError),
    #[error("the settings could not be reloaded: {0}")]
    Internal(String),
}

/// Everything a reload swaps; cheap to clone.
#[derive(Clone)]
pub struct Reloader(Arc<Inner>);

struct Inner {
    source: SettingsSource,
    live: LiveSettings,
    governor: Governor,
    models: Arc<ModelRegistry>,
    /// The logger's level, when the relay's logger follows one.
    level: Option<LogLevelSwitch>,
    log: Logger,
    /// One reload at a time: two could otherwise put the older file's values in force last.
    serial: tokio::sync::Mutex<()>,
}

/// The parts a reload reaches.
pub struct Parts {
    pub live: LiveSettings,
    pub governor: Governor,
    pub models: Arc<ModelRegistry>,
    pub level: Option<LogLevelSwitch>,
}

impl Reloader {
    /// Reads the layers the running settings were loaded from (`Settings::source`).
    pub fn new(parts: Parts, log: Logger) -> Reloader {
        let source = parts.live.load().source.clone();
        Reloader(Arc::new(Inner {
            source,
            live: parts.live,
            governor: parts.governor,
            models: parts.models,
            level: parts.level,
            log,
            serial: tokio::sync::Mutex::new(()),
        }))
    }

    /// Reads the settings again, puts in force what can change at runtime and says what changed;
    /// logs the outcome either way.
    pub async fn reload(&self) -> Result<Changes, ReloadError> {
        let _one_at_a_time = self.0.serial.lock().await;
        let outcome = self.read().await.and_then(|read| self.apply(&read));
        match &outcome {
            Ok(changes) => self.log_applied(changes),
            Err(e) => error!(self.0.log, "settings reload refused"; "error" => e.to_string()),
        }
        outcome
    }

    /// The settings as the file and the environment say now, read off the arbiter.
    async fn read(&self) -> Result<Settings, ReloadError> {
        let source = self.0.source.clone();
        actix_web::web::block(move || source.load())
            .await
            .map_err(|e| ReloadError::Internal(e.to_string()))?
            .map_err(ReloadError::from)
    }

    fn apply(&self, read: &Settings) -> Result<Changes, ReloadError> {
        let running = self.0.live.load_full();
        let (changes, effective) = compare(&running, read).map_err(ReloadError::Internal)?;
        if changes.touches("limits") {
            self.0.governor.set_limits(effective.limits.clone());
        }
        if changes.touches("models") {
            self.0.models.reconfigure(&effective.models);
        }
        if let Some(level) = &self.0.level {
            level.set(effective.log.level);
        }
        self.0.live.store(Arc::new(effective));
        Ok(changes)
    }

    fn log_applied(&self, changes: &Changes) {
        let log = &self.0.log;
        info!(log, "settings reloaded";
            "applied" => changes.applied.join(","),
            "needs_restart" => changes.needs_restart.join(","));
        if !changes.needs_restart.is_empty() {
            warn!(log, "changed settings keep their old value until the relay restarts";
                "settings" => changes.needs_restart.join(","));
        }
    }
}

/// The process's SIGHUPs, listened for from now on (a SIGHUP no one listens for ends the
/// process: listen before the relay says it is up).
pub fn hangups() -> std::io::Result<Signal> {
    signal(SignalKind::hangup())
}

/// Reloads the settings at each SIGHUP, for as long as the relay runs.
pub async fn reload_on_hangup(mut hangups: Signal, reloader: Reloader) {
    while hangups.recv().await.is_some() {
        info!(reloader.0.log, "SIGHUP: reloading the settings");
        // The outcome is logged by the reload itself.
        let _ = reloader.reload().await;
    }
}
