//! `CODEX_RELAY__SECTION__KEY_FILE=/path`: any setting's value read from a file, as secrets are
//! mounted (container secrets, systemd credentials). The file's content, its trailing newline
//! trimmed, takes the place of `CODEX_RELAY__SECTION__KEY` in the environment layer, so it is
//! parsed and checked like the plain variable. Both set at once is refused; a file that cannot be
//! read stops startup naming the variable and the path.
//!
//! A variable ending in `_FILE` is a file variant unless its whole name is a setting itself
//! (`CODEX_RELAY__UPSTREAM__CA_FILE` is `upstream.ca_file`; its file variant is `…CA_FILE_FILE`).

use std::collections::HashMap;
use std::path::PathBuf;

use super::SettingsError;

/// What a variable name ends with to say "read my value from this file".
const FILE_SUFFIX: &str = "_FILE";

/// What every setting's environment variable starts with: `CODEX_RELAY__SECTION__KEY`.
const PREFIX: &str = "CODEX_RELAY__";

/// Settings whose own name ends in `_file` and which have no default (so the embedded defaults
/// do not list them).
const OPTIONAL_SETTINGS: &[&str] = &["upstream.ca_file"];

/// The environment layer's variables (those starting with `CODEX_RELAY__`), with every file variant
/// replaced by the plain variable holding the file's content.
pub(super) fn environment(
    defaults: &config::Config,
) -> Result<HashMap<String, String>, SettingsError> {
    let ours = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value)))
        // The environment layer matches its prefix in any case: so does this.
        .filter(|(name, _)| has_prefix(name));
    let mut plain = HashMap::new();
    let mut from_files = Vec::new();
    for (name, value) in ours {
        match file_variant_of(&name, defaults) {
            Some(target) => from_files.push((name, target, PathBuf::from(value))),
            None => {
                let value = value.into_string().map_err(|_| SettingsError::EnvFile {
                    variable: name.clone(),
                    reason: "its value is not UTF-8".to_owned(),
                })?;
                plain.insert(name, value);
            }
        }
    }
    for (variable, target, path) in from_files {
        if plain.contains_key(&target) {
            return Err(SettingsError::EnvFile {
                variable,
                reason: format!("{target} is set too: set only one of them"),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|e| SettingsError::EnvFile {
            reason: format!("cannot read {}: {e}", path.display()),
            variable: variable.clone(),
        })?;
        let value = text.strip_suffix('\n').unwrap_or(&text);
        let value = value.strip_suffix('\r').unwrap_or(value);
        plain.insert(target, value.to_owned());
    }
    Ok(plain)
}

/// The plain variable `name` stands for when it is a file variant of a setting.
fn file_variant_of(name: &str, defaults: &config::Config) -> Option<String> {
    let target = name.strip_suffix(FILE_SUFFIX)?;
    let is_setting = |variable: &str| {
        let key = setting_key(variable);
        OPTIONAL_SETTINGS.contains(&key.as_str()) || defaults.get::<config::Value>(&key).is_ok()
    };
    (!is_setting(name) && is_setting(target)).then(|| target.to_owned())
}

/// `CODEX_RELAY__SECTION__KEY` → `section.key`.
fn setting_key(variable: &str) -> String {
    let name = variable.get(PREFIX.len()..).unwrap_or(variable);
    name.to_lowercase().replace("__", ".")
}

fn has_prefix(name: &str) -> bool {
    name.get(..PREFIX.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> config::Config {
        super::super::embedded().build().unwrap()
    }

    #[test]
    fn a_file_variant_names_its_setting_and_settings_ending_in_file_stay_plain() {
        let d = defaults();
        let variant = |name: &str| file_variant_of(name, &d);
        assert_eq!(
            variant("CODEX_RELAY__STORE__PATH_FILE").as_deref(),
            Some("CODEX_RELAY__STORE__PATH")
        );
        assert_eq!(
            variant("CODEX_RELAY__SERVER__LISTEN_FILE").as_deref(),
            Some("CODEX_RELAY__SERVER__LISTEN")
        );
        assert_eq!(variant("CODEX_RELAY__UPSTREAM__CA_FILE"), None);
        assert_eq!(
            variant("CODEX_RELAY__UPSTREAM__CA_FILE_FILE").as_deref(),
            Some("CODEX_RELAY__UPSTREAM__CA_FILE")
        );
        assert_eq!(
            variant("CODEX_RELAY__MODELS__ALIASES_FILE").as_deref(),
            Some("CODEX_RELAY__MODELS__ALIASES")
        );
        assert_eq!(variant("CODEX_RELAY__NO__SUCH_FILE"), None);
    }

    #[test]
    fn the_optional_settings_named_here_are_real_settings() {
        for key in OPTIONAL_SETTINGS {
            let (section, name) = key.split_once('.').unwrap();
            let text = format!("[{section}]\n{name} = \"x\"\n");
            assert!(
                super::super::Settings::from_file_text(&text).is_ok(),
                "{key}"
            );
        }
    }
}
