//! `codex-relay backup FILE` and `codex-relay restore FILE`: a consistent copy of the store
//! taken while the server runs, and the store replaced by one while no server runs. Both print
//! the master key id the backup needs alone on stdout. A backup also copies the audit trail to
//! `FILE.audit.db`; a restore leaves the trail alone: it is the record of what happened, which a
//! restored store does not undo (docs/audit.md).

use std::path::{Path, PathBuf};

use clap::Args;

use crate::audit;
use crate::settings::Settings;
use crate::store::{self, BackupInfo, MasterKey, Store};

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the backup (mode 0600; an existing file is replaced whole).
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A backup written by `codex-relay backup`.
    pub file: PathBuf,
    /// Restore even when the configured master key does not open the backup (switch the key
    /// source to the backup's key before the next start).
    #[arg(long)]
    pub force: bool,
}

pub fn backup(store: &Store, settings: &Settings, args: &BackupArgs) -> anyhow::Result<()> {
    let info = store.backup_to(&args.file)?;
    eprintln!(
        "backed up the store to {} ({}); it needs master key {}: keep that key with it",
        args.file.display(),
        taken(&info),
        info.key_id
    );
    backup_audit_trail(settings, &args.file)?;
    say!("{}", info.key_id);
    Ok(())
}

/// The audit trail copied beside the store's backup, when there is one.
fn backup_audit_trail(settings: &Settings, file: &Path) -> anyhow::Result<()> {
    let trail = audit::path_of(settings);
    if !trail.exists() {
        eprintln!("no audit trail at {} to back up", trail.display());
        return Ok(());
    }
    let mut dest = file.as_os_str().to_owned();
    dest.push(".audit.db");
    let dest = PathBuf::from(dest);
    let head = audit::backup(&trail, &dest)?;
    eprintln!(
        "backed up the audit trail to {} (up to row {head})",
        dest.display()
    );
    Ok(())
}

pub fn restore(db: &Path, key: &MasterKey, args: &RestoreArgs) -> anyhow::Result<()> {
    let info = store::restore(db, &args.file, key, args.force)?;
    eprintln!(
        "restored the store {} from {} ({}); it needs master key {}{}",
        db.display(),
        args.file.display(),
        taken(&info),
        info.key_id,
        if info.key_id == key.id_hex() {
            ""
        } else {
            ": give the relay that key before it starts"
        }
    );
    say!("{}", info.key_id);
    Ok(())
}

fn taken(info: &BackupInfo) -> String {
    info.taken_at.as_deref().map_or_else(
        || "not marked by `backup`".to_owned(),
        |t| format!("taken {t}"),
    )
}
