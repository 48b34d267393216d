//! `codex-relay config show|check`: the effective settings with where each value came from
//! (`default`, `file:PATH`, `env:VAR`; secrets masked, the master key by its source only), and a
//! settings file checked as startup checks it, without opening the store or listening.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::{printable, ListArgs};
use crate::settings::{SettingsSource, ShownSetting};
use crate::store::files::key_file_of;
use crate::store::{MASTER_KEY_COMMAND_ENV, MASTER_KEY_ENV, MASTER_KEY_FILE_ENV};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings, each with its source (default, file:PATH, env:VAR).
    Show(ListArgs),
    /// Check a settings file, with the environment over it, as startup would; start nothing.
    Check {
        /// The settings file (TOML) to check.
        file: PathBuf,
    },
}

/// Exit status of settings that do not load, as when `serve` refuses them.
const INVALID: u8 = 2;

/// Runs a `config` command over the settings file `file` (`--config`, else
/// `CODEX_RELAY_CONFIG`); `check` names its own.
pub fn config(file: Option<&Path>, command: ConfigCommand) -> ExitCode {
    match command {
        ConfigCommand::Show(args) => show(&SettingsSource::new(file), args.json),
        ConfigCommand::Check { file } => check(&file),
    }
}

fn show(source: &SettingsSource, as_json: bool) -> ExitCode {
    let (shown, settings) = match source.shown().and_then(|s| Ok((s, source.load()?))) {
        Ok(loaded) => loaded,
        Err(e) => return refused(&e.to_string()),
    };
    let key_source = master_key_source(&settings.store.path);
    if as_json {
        let document = json!({"settings": shown, "master_key": {"source": key_source}});
        match super::printable_json(&document) {
            Ok(text) => say!("{text}"),
            Err(e) => return refused(&e.to_string()),
        }
    } else {
        print_table(&shown, &key_source);
    }
    ExitCode::SUCCESS
}

fn print_table(shown: &[ShownSetting], key_source: &str) {
    let width = shown.iter().map(|s| s.key.len()).max().unwrap_or(0);
    for setting in shown {
        let value = setting.value.to_string();
        let value = printable(&value);
        say!(
            "{:width$}  {value}  ({})",
            setting.key,
            printable(&setting.source)
        );
    }
    say!("{:width$}  (never shown)  ({key_source})", "master key");
}

fn check(file: &Path) -> ExitCode {
    match SettingsSource::file(file).load() {
        Ok(_) => {
            say!("valid");
            eprintln!(
                "codex-relay: {} is valid (with the environment over it)",
                printable(&file.display().to_string())
            );
            ExitCode::SUCCESS
        }
        Err(e) => refused(&e.to_string()),
    }
}

fn refused(reason: &str) -> ExitCode {
    eprintln!("codex-relay: {}", printable(reason));
    ExitCode::from(INVALID)
}

/// Where the master key comes from, said as a source (never the key): the environment variable
/// that holds it or names its file, else the key file beside the store, else that none exists yet.
pub(super) fn master_key_source(db: &Path) -> String {
    let source = if std::env::var_os(MASTER_KEY_ENV).is_some() {
        format!("env:{MASTER_KEY_ENV}")
    } else if std::env::var_os(MASTER_KEY_COMMAND_ENV).is_some() {
        format!("env:{MASTER_KEY_COMMAND_ENV} (the command's output)")
    } else if let Some(path) = std::env::var_os(MASTER_KEY_FILE_ENV) {
        let path = PathBuf::from(path);
        format!("env:{MASTER_KEY_FILE_ENV} → file:{}", path.display())
    } else {
        let beside = key_file_of(db);
        match beside.exists() {
            true => format!("file:{}", beside.display()),
            false => format!(
                "none yet: generated as {} at the first start",
                beside.display()
            ),
        }
    };
    printable(&source).into_owned()
}
