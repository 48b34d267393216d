//! Which changed settings a running relay applies, and which wait for a restart: a pure
//! comparison of two [`Settings`], key by key (`section.key`).
//!
//! [`LIVE`] lists the settings whose every reader follows a reload: those read from the settings
//! snapshot at each request, the governor's limits, the model registry's offer, and the log level.
//! Any other change — listen addresses, the store, workers, TLS trust, timeouts the upstream
//! clients were built with, the pool's strategy and health rules — needs a restart, and the
//! snapshot keeps its old value until then, so that every part of the relay agrees on one value.

use crate::settings::Settings;

/// Settings applied by a reload, each read live by every part that uses it.
pub const LIVE: &[&str] = &[
    // The governor (`Governor::set_limits`).
    "limits.default_key_rpm",
    "limits.max_in_flight",
    "limits.auth_failures_per_minute",
    "limits.auth_failures_tracked_addresses",
    // The model registry (`ModelRegistry::reconfigure`) and the model answers.
    "models.catalog",
    "models.aliases",
    "models.hidden",
    "models.owned_by",
    // Read from the settings snapshot by each request (`http::failover`, `http::responses`).
    "routing.max_attempts",
    "routing.retry_backoff_ms",
    "routing.hold_back_bytes",
    "routing.hold_back_ms",
    "compat.mode",
    "compat.default_instructions",
    "server.max_body_bytes",
    "server.sse_keepalive_ms",
    "upstream.stream_idle_timeout_secs",
    "metrics.open",
    // Read by each request and handed to the response memory with each call (`recall`).
    "responses.memory",
    // The logger's level switch.
    "log.level",
    // Read at each WebSocket handshake (connections already open keep theirs), and by each turn
    // (`websocket.fallback_secs`).
    "websocket.enabled",
    "websocket.max_connections_per_key",
    "websocket.idle_timeout_secs",
    "websocket.ping_interval_secs",
    "websocket.upstream_idle_secs",
    "websocket.fallback_secs",
];

/// What a reload found changed, by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Changes {
    /// In force from the next request on.
    pub applied: Vec<String>,
    /// Changed in the file or the environment, still at the old value until a restart.
    pub needs_restart: Vec<String>,
}

impl Changes {
    /// True when a part of the relay outside the settings snapshot must take the new values.
    pub fn touches(&self, section: &str) -> bool {
        let prefix = format!("{section}.");
        self.applied.iter().any(|key| key.starts_with(&prefix))
    }
}

/// Compares `running` with `read` and returns the changes and the settings to put in force:
/// `running` with the [`LIVE`] values of `read`. Fails only if the settings cannot be written as
/// JSON and back, which would be a bug.
pub fn compare(running: &Settings, read: &Settings) -> Result<(Changes, Settings), String> {
    let old = serde_json::to_value(running).map_err(|e| e.to_string())?;
    let new = serde_json::to_value(read).map_err(|e| e.to_string())?;
    let mut effective = old.clone();
    let mut changes = Changes::default();
    for (section, keys) in new.as_object().into_iter().flatten() {
        for (key, value) in keys.as_object().into_iter().flatten() {
            if old.get(section).and_then(|s| s.get(key)) == Some(value) {
                continue;
            }
            let name = format!("{section}.{key}");
            if LIVE.contains(&name.as_str()) {
                effective[section][key] = value.clone();
                changes.applied.push(name);
            } else {
                changes.needs_restart.push(name);
            }
        }
    }
    changes.applied.sort();
    changes.needs_restart.sort();
    let mut effective: Settings = serde_json::from_value(effective).map_err(|e| e.to_string())?;
    effective.source = read.source.clone();
    Ok((changes, effective))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(settings: &Settings) -> serde_json::Value {
        serde_json::to_value(settings).unwrap()
    }

    fn defaults() -> Settings {
        Settings::defaults().unwrap()
    }

    #[test]
    fn a_limit_and_an_alias_apply_and_a_listen_address_waits_for_a_restart() {
        let running = defaults();
        let mut read = defaults();
        read.limits.default_key_rpm = 5;
        read.models.aliases.insert("codex".into(), "gpt-5.5".into());
        read.server.listen = "0.0.0.0:9999".parse().unwrap();
        let (changes, effective) = compare(&running, &read).unwrap();
        assert_eq!(
            changes.applied,
            ["limits.default_key_rpm", "models.aliases"]
        );
        assert_eq!(changes.needs_restart, ["server.listen"]);
        assert_eq!(effective.limits.default_key_rpm, 5);
        assert_eq!(effective.models.aliases["codex"], "gpt-5.5");
        assert_eq!(
            effective.server.listen, running.server.listen,
            "kept until a restart"
        );
        assert!(changes.touches("models") && changes.touches("limits"));
        assert!(!changes.touches("log"));
    }

    #[test]
    fn the_same_settings_change_nothing() {
        let (changes, effective) = compare(&defaults(), &defaults()).unwrap();
        assert_eq!(changes, Changes::default());
        assert_eq!(json(&effective), json(&defaults()));
    }

    #[test]
    fn every_live_setting_exists() {
        let all = json(&defaults());
        for key in LIVE {
            let (section, name) = key.split_once('.').unwrap();
            assert!(all[section].get(name).is_some(), "{key} is not a setting");
        }
    }
}
