//! Settings: the embedded `config/default.toml`, then an optional file, then the environment.
//!
//! Every key lives in `config/default.toml` with a comment; this module only gives the keys types
//! and checks the values, so an invalid setting stops startup with a message naming the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::builder::DefaultState;
use config::{Config, ConfigBuilder, File, FileFormat};
use serde::{Deserialize, Serialize};
use url::Url;

mod env_files;
mod sources;
mod validate;

pub use self::sources::{Origin, SettingsSource, ShownSetting};

/// The defaults, compiled into the binary so the relay starts with no file at all.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Environment variable naming an optional settings file (same as `--config`).
pub const CONFIG_FILE_ENV: &str = "CODEX_RELAY_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid settings: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid setting `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error("invalid environment variable {variable}: {reason}")]
    EnvFile { variable: String, reason: String },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub admin: AdminSettings,
    pub store: StoreSettings,
    pub upstream: UpstreamSettings,
    pub oauth: OauthSettings,
    pub compat: CompatSettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    pub models: ModelSettings,
    pub limits: LimitSettings,
    pub routing: RoutingSettings,
    pub responses: ResponsesSettings,
    pub audit: AuditSettings,
    pub websocket: WebSocketSettings,
    /// Where these settings were read from, so that a reload reads the same layers again.
    #[serde(skip)]
    pub source: SettingsSource,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub workers: usize,
    pub max_body_bytes: usize,
    /// How long a request body may take to arrive, on both planes (408 after).
    pub body_read_timeout_secs: u64,
    pub sse_keepalive_ms: u64,
    /// How long a SIGTERM leaves the calls in flight to finish before they are cut.
    pub shutdown_grace_secs: u64,
}

/// `[websocket]`: Responses over WebSocket (`http::websocket`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketSettings {
    pub enabled: bool,
    pub max_connections_per_key: usize,
    /// A connection without a frame from its client for this long is closed.
    pub idle_timeout_secs: u64,
    pub ping_interval_secs: u64,
    /// How long a connection keeps its upstream WebSocket (and its account) between turns.
    pub upstream_idle_secs: u64,
    /// How long turns go over HTTP after the upstream refused a WebSocket.
    pub fallback_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    pub path: PathBuf,
    pub pool_size: u32,
    pub sync_interval_ms: u64,
    /// How long `CODEX_RELAY_MASTER_KEY_COMMAND` may run before it is killed.
    pub master_key_command_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    pub base_url: Url,
    pub connect_timeout_secs: u64,
    pub response_timeout_secs: u64,
    pub stream_idle_timeout_secs: u64,
    pub originator: String,
    pub user_agent: String,
    /// Streams one HTTP/2 connection carries at most; more open another connection.
    pub max_streams_per_connection: usize,
    /// Extra CA certificates (PEM) to trust besides the public roots; read where the outgoing
    /// clients are built (`upstream::outbound`), which refuses a file that cannot serve.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OauthSettings {
    pub issuer: Url,
    pub client_id: String,
    pub refresh_skew_secs: u64,
    pub refresh_max_age_days: u64,
    pub refresh_wait_secs: u64,
    pub refresh_retry_initial_ms: u64,
    pub refresh_retry_max_secs: u64,
    pub refresh_check_interval_secs: u64,
    pub refresh_min_interval_secs: u64,
    pub token_timeout_secs: u64,
    pub callback_port: u16,
    pub login_timeout_secs: u64,
    pub device_timeout_secs: u64,
    pub device_min_interval_ms: u64,
}

impl OauthSettings {
    /// The actors' refresh policy.
    pub fn refresh_policy(&self) -> relay_actors::RefreshPolicy {
        let secs = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
        relay_actors::RefreshPolicy {
            skew_secs: secs(self.refresh_skew_secs),
            max_age_secs: secs(self.refresh_max_age_days.saturating_mul(24 * 3600)),
            wait: Duration::from_secs(self.refresh_wait_secs),
            retry_initial: Duration::from_millis(self.refresh_retry_initial_ms),
            retry_max: Duration::from_secs(self.refresh_retry_max_secs),
            check_every: Duration::from_secs(self.refresh_check_interval_secs),
            min_interval: Duration::from_secs(self.refresh_min_interval_secs),
        }
    }

    /// `{issuer}/{path}` (the issuer may or may not end with a slash).
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}/{path}", self.issuer.as_str().trim_end_matches('/'))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompatMode {
    Relaxed,
    Strict,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CompatSettings {
    pub mode: CompatMode,
    pub default_instructions: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub level: LogLevel,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `GET /metrics` on the admin listener without an admin token.
    pub open: bool,
    /// Add per-key families (`codex_relay_key_…`, labelled by key id): one series set per key.
    pub per_key: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    pub catalog: Vec<String>,
    pub owned_by: String,
    /// Alias → upstream slug.
    pub aliases: BTreeMap<String, String>,
    pub hidden: Vec<String>,
    /// Seconds between fetches of the upstream catalog; 0 serves `catalog` only.
    pub refresh_interval_secs: u64,
    /// `client_version` sent when fetching the upstream catalog.
    pub client_version: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Requests per minute of a key that sets none; 0 means no default rate.
    pub default_key_rpm: u32,
    /// Upstream calls in flight at once across every key; beyond it, 503 `overloaded`.
    pub max_in_flight: usize,
    /// Failed authentications one client address may make per minute before its further
    /// failures get 429 (and no access line each); 0 turns the throttle off.
    pub auth_failures_per_minute: u32,
    /// Client addresses whose failures are counted at once; past it they share one budget.
    pub auth_failures_tracked_addresses: usize,
}

/// `routing.strategy`: how the pool picks an account for a request without a bound conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingStrategy {
    Headroom,
    RoundRobin,
    FillFirst,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingSettings {
    pub strategy: RoutingStrategy,
    pub max_attempts: u32,
    pub retry_backoff_ms: u64,
    pub max_in_flight: u32,
    pub affinity_ttl_secs: u64,
    pub affinity_capacity: usize,
    pub hold_back_bytes: usize,
    pub hold_back_ms: u64,
    pub breaker_failure_threshold: u32,
    pub breaker_backoff_initial_ms: u64,
    pub breaker_backoff_max_ms: u64,
    pub rate_limit_backoff_initial_ms: u64,
    pub rate_limit_backoff_max_ms: u64,
    pub probe_interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResponsesSettings {
    pub memory: MemorySettings,
}

/// `responses.memory`: the responses the relay remembers for stateful clients (`recall`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MemorySettings {
    pub enabled: bool,
    /// Minutes a remembered response can be referenced.
    pub ttl_mins: u64,
    /// Bytes all remembered responses may take together; the oldest go first past it.
    pub max_bytes: usize,
}

/// `audit.on_failure`: what the data plane does while audit rows cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOnFailure {
    /// Serve on; the rows lost are logged and counted.
    Continue,
    /// Answer 503 `audit_unavailable` before any account is used.
    Refuse,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// One row per data-plane request and per administrative act (metadata, never content).
    pub enabled: bool,
    /// The audit trail's SQLite file; empty: `audit.db` beside `store.path`.
    pub path: PathBuf,
    /// The longest a row waits before it is written (what a kill -9 may lose).
    pub flush_interval_ms: u64,
    /// Rows pending that are written at once, without waiting for the interval.
    pub flush_rows: usize,
    /// Rows the queue holds before further rows are lost (or refused, see `on_failure`).
    pub queue_rows: usize,
    pub on_failure: AuditOnFailure,
    /// Rows older than this many days are pruned; 0 keeps every row.
    pub retention_days: u64,
    /// Scoped, time-limited capture of request and response bodies.
    pub capture: CaptureSettings,
}

/// `audit.capture`: scoped, time-limited capture of request and response bodies (`capture`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureSettings {
    /// The switch without which no capture can be started; off, nothing is captured.
    pub enabled: bool,
    /// The longest a capture may run, in minutes.
    pub max_duration_mins: u64,
    /// Bytes of one response kept; past it the rest is cut and a marker says so.
    pub max_response_bytes: usize,
    /// Days a captured record is kept before it is deleted.
    pub retention_days: u64,
}

impl Settings {
    /// Loads the layers: embedded defaults, then `file` (or `CODEX_RELAY_CONFIG`), then the
    /// `CODEX_RELAY__SECTION__KEY` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        SettingsSource::new(file).load()
    }

    /// Loads only the embedded defaults (tests start from these and override fields).
    pub fn defaults() -> Result<Settings, SettingsError> {
        Self::checked(embedded())
    }

    /// A settings file's `text` over the embedded defaults, parsed and checked as
    /// [`Settings::load`] does, but without the environment layer: nothing is read but `text`
    /// (the fuzz targets' way in).
    #[doc(hidden)]
    pub fn from_file_text(text: &str) -> Result<Settings, SettingsError> {
        Self::checked(embedded().add_source(File::from_str(text, FileFormat::Toml)))
    }

    fn checked(builder: ConfigBuilder<DefaultState>) -> Result<Settings, SettingsError> {
        Self::checked_config(builder.build()?)
    }

    /// Built layers as settings, checked as startup checks them.
    fn checked_config(config: Config) -> Result<Settings, SettingsError> {
        let settings: Settings = config.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }
}

/// The first layer: the defaults compiled into the binary.
fn embedded() -> ConfigBuilder<DefaultState> {
    Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_load_and_match_the_documented_values() {
        let s = Settings::defaults().unwrap();
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.store.path, PathBuf::from("data/codex-relay.db"));
        assert_eq!(
            s.upstream.base_url.as_str(),
            "https://chatgpt.com/backend-api/codex"
        );
        assert_eq!(s.oauth.issuer.as_str(), "https://auth.openai.com/");
        assert_eq!(s.compat.mode, CompatMode::Relaxed);
        let policy = s.oauth.refresh_policy();
        assert_eq!(policy.skew_secs, 300);
        assert_eq!(policy.max_age_secs, 8 * 24 * 3600);
        assert_eq!(policy.min_interval, Duration::from_secs(60));
        assert_eq!(s.oauth.callback_port, 1455);
        assert_eq!(
            s.oauth.endpoint("oauth/token"),
            "https://auth.openai.com/oauth/token"
        );
        assert_eq!(s.routing.strategy, RoutingStrategy::Headroom);
        assert_eq!(s.routing.max_attempts, 3);
        assert_eq!(s.upstream.max_streams_per_connection, 100);
        assert_eq!(s.server.body_read_timeout_secs, 30);
        assert_eq!(s.server.shutdown_grace_secs, 30);
        let memory = &s.responses.memory;
        assert!(memory.enabled);
        assert_eq!((memory.ttl_mins, memory.max_bytes), (60, 64 << 20));
        assert!(
            !s.audit.capture.enabled,
            "content capture is off by default"
        );
        assert_eq!(s.audit.capture.max_duration_mins, 24 * 60);
    }

    #[test]
    fn routing_values_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(&path, "[routing]\nmax_attempts = 0\n").unwrap();
        let err = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("routing.max_attempts"), "{err}");
        std::fs::write(&path, "[routing]\nstrategy = \"random\"\n").unwrap();
        let err = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("random"), "{err}");
    }

    #[test]
    fn an_invalid_file_value_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(&path, "[server]\nlisten = \"not an address\"\n").unwrap();
        let err = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("server.listen"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(&path, "[server]\nlisten_addr = \"127.0.0.1:1\"\n").unwrap();
        let err = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("listen_addr"), "{err}");
    }

    #[test]
    fn a_checked_value_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(&path, "[upstream]\nbase_url = \"ftp://example.com\"\n").unwrap();
        let err = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("upstream.base_url"), "{err}");
        std::fs::write(&path, "[upstream]\nmax_streams_per_connection = 0\n").unwrap();
        let err = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("upstream.max_streams_per_connection"), "{err}");
        for key in ["body_read_timeout_secs", "shutdown_grace_secs"] {
            for bad in [0, 3601] {
                std::fs::write(&path, format!("[server]\n{key} = {bad}\n")).unwrap();
                let err = Settings::load(Some(&path)).unwrap_err().to_string();
                assert!(err.contains(&format!("server.{key}")), "{err}");
            }
        }
    }

    #[test]
    fn governance_settings_load_from_a_file_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        let text = "[models]\nhidden = [\"gpt-5.2\"]\n[models.aliases]\ncodex = \"gpt-5.5\"\n\
                    [limits]\ndefault_key_rpm = 0\n";
        std::fs::write(&path, text).unwrap();
        let s = Settings::load(Some(&path)).unwrap();
        assert_eq!(s.models.aliases["codex"], "gpt-5.5");
        assert_eq!(s.models.hidden, ["gpt-5.2"]);
        assert_eq!(s.limits.default_key_rpm, 0);
        std::fs::write(&path, "[limits]\nmax_in_flight = 0\n").unwrap();
        let err = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("limits.max_in_flight"), "{err}");
        let defaults = Settings::defaults().unwrap().limits;
        assert_eq!(defaults.auth_failures_per_minute, 20);
        assert_eq!(defaults.auth_failures_tracked_addresses, 10_000);
        std::fs::write(&path, "[limits]\nauth_failures_tracked_addresses = 0\n").unwrap();
        let err = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("limits.auth_failures_tracked_addresses"),
            "{err}"
        );
        std::fs::write(&path, "[limits]\nauth_failures_per_minute = -1\n").unwrap();
        let err = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("auth_failures_per_minute"), "{err}");
    }

    #[test]
    fn audit_settings_default_to_on_and_continue_and_are_checked() {
        let audit = Settings::defaults().unwrap().audit;
        assert!(audit.enabled);
        assert_eq!(audit.on_failure, AuditOnFailure::Continue);
        assert_eq!((audit.flush_interval_ms, audit.retention_days), (200, 0));
        assert!(audit.path.as_os_str().is_empty());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        for (key, bad) in [
            ("flush_interval_ms", "0"),
            ("flush_rows", "0"),
            ("queue_rows", "0"),
            ("retention_days", "40000"),
            ("on_failure", "\"ignore\""),
        ] {
            std::fs::write(&path, format!("[audit]\n{key} = {bad}\n")).unwrap();
            let err = Settings::load(Some(&path)).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
        std::fs::write(&path, "[audit]\non_failure = \"refuse\"\n").unwrap();
        let audit = Settings::load(Some(&path)).unwrap().audit;
        assert_eq!(audit.on_failure, AuditOnFailure::Refuse);
    }

    #[test]
    fn limits_in_the_settings_have_upper_bounds_named_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        let cases = [
            (
                "limits",
                "default_key_rpm",
                "4294967295",
                "must be 0 to 1000000",
            ),
            (
                "limits",
                "max_in_flight",
                "10000001",
                "must be 1 to 1000000",
            ),
            (
                "routing",
                "max_in_flight",
                "4000000000",
                "must be 0 to 100000",
            ),
            ("routing", "max_attempts", "1000", "must be 1 to 20"),
            (
                "routing",
                "affinity_capacity",
                "100000000000",
                "must be 1 to 10000000",
            ),
            ("store", "pool_size", "100000", "must be 1 to 64"),
            ("responses.memory", "ttl_mins", "0", "must be 1 to 10080"),
            (
                "responses.memory",
                "max_bytes",
                "1000",
                "must be 1048576 to 68719476736",
            ),
            (
                "audit.capture",
                "max_duration_mins",
                "0",
                "must be 1 to 43200",
            ),
            (
                "audit.capture",
                "max_response_bytes",
                "100",
                "must be 1024 to 67108864",
            ),
            (
                "audit.capture",
                "retention_days",
                "3651",
                "must be 1 to 3650",
            ),
            (
                "upstream",
                "max_streams_per_connection",
                "0",
                "must be 1 to 10000",
            ),
        ];
        for (section, key, value, reason) in cases {
            std::fs::write(&path, format!("[{section}]\n{key} = {value}\n")).unwrap();
            let err = Settings::load(Some(&path)).unwrap_err().to_string();
            assert!(
                err.contains(&format!("`{section}.{key}`: {reason}")),
                "{err}"
            );
        }
        std::fs::write(
            &path,
            "[routing]\nmax_attempts = 20\nmax_in_flight = 100000\n",
        )
        .unwrap();
        assert!(Settings::load(Some(&path)).is_ok());
    }
}
