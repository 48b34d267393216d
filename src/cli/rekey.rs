//! `codex-relay store rekey`: rotates the master key. The store's current key comes from the
//! usual source; the new one from `--new-key-file` or `--new-key-command`. Run again after an
//! interruption, it finishes the rotation, or says it was already done.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand};

use super::printable;
use crate::capture::{self, CaptureDb, Resealed};
use crate::settings::Settings;
use crate::store::{sealing_key_id, MasterKey, Store};

/// Hidden test hook: `inside` stops the rekey inside its transaction, `committed` right after
/// it commits, for as long as a test needs to kill the process there.
const PAUSE_ENV: &str = "CODEX_RELAY_TEST_REKEY_PAUSE";

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Re-seal every stored credential under a new master key, in one transaction. A running
    /// server follows at once; point the key source at the new key before its next start.
    Rekey(RekeyArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("new").required(true).args(["new_key_file", "new_key_command"])))]
pub struct RekeyArgs {
    /// File holding the new key: base64 of 32 bytes (`openssl rand -base64 32`).
    #[arg(long, value_name = "FILE")]
    pub new_key_file: Option<PathBuf>,
    /// Command printing the new key, run by `sh -c` like CODEX_RELAY_MASTER_KEY_COMMAND.
    #[arg(long, value_name = "COMMAND")]
    pub new_key_command: Option<String>,
}

/// Rekeys the store of `settings`, now sealed with `current`. Prints the new key's id on stdout.
pub fn rekey(settings: &Settings, args: &RekeyArgs, current: MasterKey) -> anyhow::Result<()> {
    let new = new_key(
        args,
        Duration::from_secs(settings.store.master_key_command_timeout_secs),
    )?;
    let path = &settings.store.path;
    if sealing_key_id(path)?.as_deref() == Some(new.id_hex().as_str()) {
        eprintln!(
            "the store is already sealed with master key {}: nothing to do. Make the key source \
             give the new key before the next start.",
            new.id_hex()
        );
        say!("{}", new.id_hex());
        return Ok(());
    }
    let store = Store::open(path, settings.store.pool_size, current)?;
    // The capture file's records before the store (a rekey run again after an interruption still
    // has the old key to open them), and after it those a running relay wrote meanwhile.
    let captures = reseal_captures(path, &store, &new)?;
    let done = store.rekey(&new, || pause_for_tests("inside"))?;
    pause_for_tests("committed");
    let captures = match (captures, reseal_captures(path, &store, &new)?) {
        // What the second pass could not open, the first could not either.
        (Some(before), Some(after)) => Some(Resealed {
            records: before.records + after.records,
            unreadable: after.unreadable,
        }),
        (before, after) => after.or(before),
    };
    eprintln!(
        "re-sealed the tokens of {} account(s) under master key {} (was {}). A running server \
         follows at once; make the key source give the new key before the next start (the old \
         key no longer opens the store).",
        done.accounts,
        new.id_hex(),
        done.from
    );
    if let Some(captured) = captures {
        eprintln!(
            "re-sealed {} captured call(s) in the capture file under the new key",
            captured.records
        );
        if captured.unreadable > 0 {
            eprintln!(
                "warning: {} captured call(s) did not open with the store's keys and were left as \
                 they were",
                captured.unreadable
            );
        }
    }
    for id in &done.unreadable {
        eprintln!(
            "warning: account {} had tokens that did not open before the rekey; they were left \
             as they were: import or log the account in again",
            printable(id)
        );
    }
    say!("{}", new.id_hex());
    Ok(())
}

/// Re-seals the records of the capture file beside the store, if there is one.
fn reseal_captures(
    store_path: &Path,
    store: &Store,
    new: &MasterKey,
) -> anyhow::Result<Option<Resealed>> {
    let path = capture::db::path_beside(store_path);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(CaptureDb::open(&path)?.reseal(store, new)?))
}

fn new_key(args: &RekeyArgs, timeout: Duration) -> anyhow::Result<MasterKey> {
    match (&args.new_key_file, &args.new_key_command) {
        (Some(path), _) => Ok(MasterKey::read_file(path)?),
        (None, Some(command)) => Ok(MasterKey::from_command(command, timeout)?),
        (None, None) => anyhow::bail!("give --new-key-file or --new-key-command"),
    }
}

/// Stops here when the test hook names `point`, long enough for the test to kill the process.
fn pause_for_tests(point: &str) {
    if std::env::var(PAUSE_ENV).is_ok_and(|v| v == point) {
        eprintln!("rekey: paused {point}");
        // A CLI process with no arbiter: blocking is what the hook is for.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_secs(120));
    }
}
