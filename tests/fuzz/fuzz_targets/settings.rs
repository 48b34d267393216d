//! A settings file's TOML through the relay's settings layers and checks
//! (`Settings::from_file_text`: the embedded defaults, the file, the validation; no environment,
//! no CA file read).
//!
//! Invariants: nothing panics, neither loading nor deriving what startup derives from accepted
//! settings; a refused value names a key that `config/default.toml` documents.
#![no_main]

use codex_relay::settings::{Settings, SettingsError, DEFAULT_TOML};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Settings::from_file_text(text) {
        Ok(settings) => {
            let _ = settings.oauth.refresh_policy();
            let _ = settings.oauth.endpoint("oauth/token");
        }
        Err(SettingsError::Invalid { key, .. }) => {
            assert!(documented(key), "{key} is not a documented key");
        }
        Err(SettingsError::Load(_)) => {}
        // From a `CODEX_RELAY__…_FILE` variable of the environment, not from the text.
        Err(SettingsError::EnvFile { .. }) => {}
    }
});

/// Whether `config/default.toml` has `key` (`section.name`) under its section, set or shown in a
/// comment.
fn documented(key: &str) -> bool {
    let Some((section, name)) = key.split_once('.') else {
        return false;
    };
    let Some((_, body)) = DEFAULT_TOML.split_once(&format!("\n[{section}]\n")) else {
        return false;
    };
    let body = body.split("\n[").next().unwrap_or(body);
    body.lines().any(|line| {
        let line = line.trim_start_matches("# ");
        line.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(" ="))
    })
}
