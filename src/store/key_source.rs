//! Where the master key comes from. The operator sets at most one source:
//!
//! | variable | the key is |
//! |---|---|
//! | `CODEX_RELAY_MASTER_KEY` | the variable's value |
//! | `CODEX_RELAY_MASTER_KEY_FILE` | the content of the file it names (a mounted secret) |
//! | `CODEX_RELAY_MASTER_KEY_COMMAND` | what the command prints (a secret manager's CLI) |
//!
//! Two of them set at once is refused naming both: a precedence would let a forgotten variable
//! decide silently which key seals the store. With none set, the key is `master.key` beside the
//! database, generated only for a store that holds nothing sealed yet.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::crypto::{write_key_file, Written};
use super::{files, key_command, CryptoError, MasterKey};

/// Environment variable holding the master key, base64 of 32 bytes.
pub const MASTER_KEY_ENV: &str = "CODEX_RELAY_MASTER_KEY";
/// Environment variable naming a file that holds the master key (e.g. a mounted secret).
pub const MASTER_KEY_FILE_ENV: &str = "CODEX_RELAY_MASTER_KEY_FILE";
/// Environment variable holding a command (run by `sh -c`) that prints the master key.
pub const MASTER_KEY_COMMAND_ENV: &str = "CODEX_RELAY_MASTER_KEY_COMMAND";

/// Where the master key came from, said once in the startup log (never the key, nor the
/// command's text, which may carry a credential of the secret manager).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    File(PathBuf),
    Command,
    Generated(PathBuf),
}

/// A key source the operator named explicitly, as read from the environment.
enum Named {
    Value(String),
    File(PathBuf),
    Command(String),
}

impl MasterKey {
    /// Resolves the master key from the one source the environment names (see the module
    /// docs), else `master.key` beside the database. That file is generated (mode 0600) only for
    /// a store that holds nothing sealed yet (`sealed_with` is `None`, see
    /// [`sealing_key_id`](super::sealing_key_id)); for one that does, its absence is an error.
    /// A command runs once per call and is killed after `command_timeout`.
    pub fn resolve(
        database: &Path,
        sealed_with: Option<&str>,
        command_timeout: Duration,
    ) -> Result<(MasterKey, KeySource), CryptoError> {
        match named_source()? {
            Some(Named::Value(text)) => Ok((Self::from_base64(&text)?, KeySource::Environment)),
            Some(Named::File(path)) => Ok((Self::read_file(&path)?, KeySource::File(path))),
            Some(Named::Command(command)) => Ok((
                Self::from_command(&command, command_timeout)?,
                KeySource::Command,
            )),
            None => beside_the_store(database, sealed_with),
        }
    }

    /// The key a command prints (run by `sh -c`, once, killed after `timeout`).
    pub fn from_command(command: &str, timeout: Duration) -> Result<MasterKey, CryptoError> {
        let printed = key_command::run(command, timeout)?;
        Self::from_base64(secrecy::ExposeSecret::expose_secret(&printed)).map_err(|_| {
            CryptoError::Command(
                "printed something that is not a master key (base64 of exactly 32 bytes)"
                    .to_owned(),
            )
        })
    }
}

/// The source the environment names, refusing two at once.
fn named_source() -> Result<Option<Named>, CryptoError> {
    let value = std::env::var(MASTER_KEY_ENV).ok().map(Named::Value);
    let file = std::env::var_os(MASTER_KEY_FILE_ENV).map(|p| Named::File(PathBuf::from(p)));
    let command = std::env::var(MASTER_KEY_COMMAND_ENV)
        .ok()
        .map(Named::Command);
    let mut set: Vec<(&'static str, Named)> = [
        (MASTER_KEY_ENV, value),
        (MASTER_KEY_FILE_ENV, file),
        (MASTER_KEY_COMMAND_ENV, command),
    ]
    .into_iter()
    .filter_map(|(name, source)| source.map(|s| (name, s)))
    .collect();
    if let [(first, _), (second, _), ..] = set.as_slice() {
        return Err(CryptoError::TwoSources { first, second });
    }
    Ok(set.pop().map(|(_, source)| source))
}

/// `master.key` beside the database: read, or generated for a store with nothing sealed.
fn beside_the_store(
    database: &Path,
    sealed_with: Option<&str>,
) -> Result<(MasterKey, KeySource), CryptoError> {
    let path = files::folder_of(database).join(files::KEY_FILE);
    if path.exists() {
        return Ok((MasterKey::read_file(&path)?, KeySource::File(path)));
    }
    if let Some(sealed_with) = sealed_with {
        return Err(CryptoError::KeyFileMissing {
            store: database.to_path_buf(),
            key_file: path,
            sealed_with: sealed_with.to_owned(),
        });
    }
    match write_key_file(&path, MasterKey::generate())? {
        Written::Ours(key) => Ok((key, KeySource::Generated(path))),
        // Another process starting on the same fresh store wrote it first: use theirs.
        Written::Theirs => Ok((MasterKey::read_file(&path)?, KeySource::File(path))),
    }
}
