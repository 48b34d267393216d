//! The checks every loaded value goes through before anything starts: ranges, relations between
//! settings, URLs and addresses. A refusal names the key, so an operator knows what to fix.

use super::{
    AuditSettings, OauthSettings, RoutingSettings, Settings, SettingsError, WebSocketSettings,
};
use crate::bounds::{
    Invalid, ACCOUNT_IN_FLIGHT, AFFINITY_CAPACITY, ATTEMPTS, AUTH_FAILURE_ADDRESSES,
    CAPTURE_MINUTES, CAPTURE_RESPONSE_BYTES, CAPTURE_RETENTION_DAYS, DEFAULT_KEY_RPM,
    KEY_COMMAND_SECS, MEMORY_BYTES, MEMORY_TTL_MINS, RELAY_IN_FLIGHT, STORE_CONNECTIONS,
    STREAMS_PER_CONNECTION,
};

impl Settings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key, reason: &str| {
            Err(SettingsError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.server.max_body_bytes < 1024 {
            return invalid("server.max_body_bytes", "must be at least 1024");
        }
        if !(1..=3600).contains(&self.server.body_read_timeout_secs) {
            return invalid(
                "server.body_read_timeout_secs",
                "must be between 1 and 3600",
            );
        }
        if !(1..=3600).contains(&self.server.shutdown_grace_secs) {
            return invalid("server.shutdown_grace_secs", "must be between 1 and 3600");
        }
        let (data, admin) = (self.server.listen, self.admin.listen);
        if data == admin && data.port() != 0 {
            return invalid(
                "admin.listen",
                "must differ from server.listen: the admin plane has its own listener",
            );
        }
        self.websocket.validate()?;
        if self.store.sync_interval_ms < 100 {
            return invalid("store.sync_interval_ms", "must be at least 100");
        }
        if self.store.path.as_os_str().is_empty() {
            return invalid("store.path", "must not be empty");
        }
        if !matches!(self.upstream.base_url.scheme(), "http" | "https") {
            return invalid("upstream.base_url", "must be an http:// or https:// URL");
        }
        if !matches!(self.oauth.issuer.scheme(), "http" | "https") {
            return invalid("oauth.issuer", "must be an http:// or https:// URL");
        }
        self.oauth.validate()?;
        if self.upstream.connect_timeout_secs == 0 || self.upstream.response_timeout_secs == 0 {
            return invalid(
                "upstream.connect_timeout_secs",
                "timeouts must be at least 1",
            );
        }
        if self.models.catalog.iter().any(|m| m.trim().is_empty()) {
            return invalid("models.catalog", "model ids must not be empty");
        }
        if self
            .models
            .aliases
            .iter()
            .any(|(a, s)| a.trim().is_empty() || s.trim().is_empty())
        {
            return invalid(
                "models.aliases",
                "aliases and their slugs must not be empty",
            );
        }
        if self.models.client_version.trim().is_empty() {
            return invalid("models.client_version", "must not be empty");
        }
        self.check_bounds()?;
        self.audit.validate()?;
        self.routing.validate()
    }

    /// The settings that are limits, against their bounds in [`crate::bounds`].
    fn check_bounds(&self) -> Result<(), SettingsError> {
        let (limits, routing, capture) = (&self.limits, &self.routing, &self.audit.capture);
        let memory = &self.responses.memory;
        let (streams, pool) = (
            self.upstream.max_streams_per_connection,
            self.store.pool_size,
        );
        let checks = [
            DEFAULT_KEY_RPM.check("limits.default_key_rpm", wide(limits.default_key_rpm)),
            RELAY_IN_FLIGHT.check("limits.max_in_flight", wide(limits.max_in_flight)),
            ACCOUNT_IN_FLIGHT.check("routing.max_in_flight", wide(routing.max_in_flight)),
            ATTEMPTS.check("routing.max_attempts", wide(routing.max_attempts)),
            AFFINITY_CAPACITY.check("routing.affinity_capacity", wide(routing.affinity_capacity)),
            STORE_CONNECTIONS.check("store.pool_size", wide(pool)),
            KEY_COMMAND_SECS.check(
                "store.master_key_command_timeout_secs",
                wide(self.store.master_key_command_timeout_secs),
            ),
            STREAMS_PER_CONNECTION.check("upstream.max_streams_per_connection", wide(streams)),
            AUTH_FAILURE_ADDRESSES.check(
                "limits.auth_failures_tracked_addresses",
                wide(limits.auth_failures_tracked_addresses),
            ),
            MEMORY_TTL_MINS.check("responses.memory.ttl_mins", wide(memory.ttl_mins)),
            MEMORY_BYTES.check("responses.memory.max_bytes", wide(memory.max_bytes)),
            CAPTURE_MINUTES.check(
                "audit.capture.max_duration_mins",
                wide(capture.max_duration_mins),
            ),
            CAPTURE_RESPONSE_BYTES.check(
                "audit.capture.max_response_bytes",
                wide(capture.max_response_bytes),
            ),
            CAPTURE_RETENTION_DAYS
                .check("audit.capture.retention_days", wide(capture.retention_days)),
        ];
        match checks.into_iter().find_map(Result::err) {
            Some(Invalid { field, reason }) => Err(SettingsError::Invalid { key: field, reason }),
            None => Ok(()),
        }
    }
}

/// A setting's number as the bounds take it (one past `i64` is past every bound).
fn wide(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

impl RoutingSettings {
    fn validate(&self) -> Result<(), SettingsError> {
        let checks: [(bool, &'static str, &str); 4] = [
            (
                self.breaker_failure_threshold == 0,
                "routing.breaker_failure_threshold",
                "must be at least 1",
            ),
            (
                self.breaker_backoff_initial_ms == 0
                    || self.breaker_backoff_max_ms < self.breaker_backoff_initial_ms,
                "routing.breaker_backoff_initial_ms",
                "must be at least 1 and at most routing.breaker_backoff_max_ms",
            ),
            (
                self.rate_limit_backoff_initial_ms == 0
                    || self.rate_limit_backoff_max_ms < self.rate_limit_backoff_initial_ms,
                "routing.rate_limit_backoff_initial_ms",
                "must be at least 1 and at most routing.rate_limit_backoff_max_ms",
            ),
            (
                self.probe_interval_ms < 10,
                "routing.probe_interval_ms",
                "must be at least 10",
            ),
        ];
        first_failed(checks)
    }
}

impl OauthSettings {
    fn validate(&self) -> Result<(), SettingsError> {
        let positive = [
            ("oauth.refresh_wait_secs", self.refresh_wait_secs),
            (
                "oauth.refresh_retry_initial_ms",
                self.refresh_retry_initial_ms,
            ),
            ("oauth.refresh_retry_max_secs", self.refresh_retry_max_secs),
            (
                "oauth.refresh_check_interval_secs",
                self.refresh_check_interval_secs,
            ),
            ("oauth.token_timeout_secs", self.token_timeout_secs),
            ("oauth.login_timeout_secs", self.login_timeout_secs),
            ("oauth.device_timeout_secs", self.device_timeout_secs),
            ("oauth.refresh_max_age_days", self.refresh_max_age_days),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(SettingsError::Invalid {
                key,
                reason: "must be at least 1".to_owned(),
            });
        }
        if self.client_id.trim().is_empty() {
            return Err(SettingsError::Invalid {
                key: "oauth.client_id",
                reason: "must not be empty".to_owned(),
            });
        }
        Ok(())
    }
}

impl AuditSettings {
    fn validate(&self) -> Result<(), SettingsError> {
        let checks: [(bool, &'static str, &str); 4] = [
            (
                !(10..=60_000).contains(&self.flush_interval_ms),
                "audit.flush_interval_ms",
                "must be 10 to 60000",
            ),
            (
                !(1..=100_000).contains(&self.flush_rows),
                "audit.flush_rows",
                "must be 1 to 100000",
            ),
            (
                !(1..=10_000_000).contains(&self.queue_rows),
                "audit.queue_rows",
                "must be 1 to 10000000",
            ),
            (
                self.retention_days > 36_500,
                "audit.retention_days",
                "must be 0 (keep every row) to 36500",
            ),
        ];
        first_failed(checks)
    }
}

/// The first check that failed, as the refusal naming its key.
fn first_failed<const N: usize>(
    checks: [(bool, &'static str, &str); N],
) -> Result<(), SettingsError> {
    match checks.into_iter().find(|(bad, _, _)| *bad) {
        Some((_, key, reason)) => Err(SettingsError::Invalid {
            key,
            reason: reason.to_owned(),
        }),
        None => Ok(()),
    }
}

impl WebSocketSettings {
    fn validate(&self) -> Result<(), SettingsError> {
        let ranges: [(&'static str, u64, std::ops::RangeInclusive<u64>); 5] = [
            (
                "websocket.max_connections_per_key",
                self.max_connections_per_key as u64,
                1..=10_000,
            ),
            (
                "websocket.idle_timeout_secs",
                self.idle_timeout_secs,
                10..=86_400,
            ),
            (
                "websocket.ping_interval_secs",
                self.ping_interval_secs,
                5..=600,
            ),
            (
                "websocket.upstream_idle_secs",
                self.upstream_idle_secs,
                1..=3600,
            ),
            ("websocket.fallback_secs", self.fallback_secs, 1..=86_400),
        ];
        for (key, value, range) in ranges {
            if !range.contains(&value) {
                return Err(SettingsError::Invalid {
                    key,
                    reason: format!("must be between {} and {}", range.start(), range.end()),
                });
            }
        }
        Ok(())
    }
}
