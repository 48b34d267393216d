//! The `codex-relay` command line. Commands share the settings and the store with `serve` and
//! work while it runs: the server picks up their changes within `store.sync_interval_ms`.
//!
//! Output contract, relied on by scripts: what a command creates is printed alone on stdout (an
//! account id, an API key); explanations and warnings go to stderr. Text from the store is
//! printed through [`printable`]: never a raw control character. Output whose reader has gone
//! (`codex-relay key list | head -1`) is dropped quietly and the command still completes.
#![allow(clippy::print_stdout, clippy::print_stderr)]

/// `println!` for a command's output: when its reader has gone (`codex-relay … | head`), the
/// output is dropped quietly instead of panicking on the broken pipe.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::say_line(format_args!($($arg)*))
    };
}

mod account;
mod account_set;
mod admin_token;
mod audit;
mod backup;
mod capture;
mod doctor;
mod key;
mod limits;
mod login;
mod new_account;
mod printable;
mod rekey;
mod settings;
mod tenant;
mod update;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, Parser, Subcommand};

pub use self::account::{account, AccountCommand};
pub use self::admin_token::{admin_token, AdminTokenCommand};
pub use self::audit::{audit, Act, AuditCommand};
pub use self::backup::{backup, restore, BackupArgs, RestoreArgs};
pub use self::capture::{capture, CaptureCommand};
pub use self::doctor::{doctor, DoctorArgs};
pub use self::key::{key, KeyCommand};
pub use self::login::{login, LoginArgs};
pub use self::printable::{printable, printable_json};
pub use self::rekey::{rekey, RekeyArgs, StoreCommand};
pub use self::settings::{config, ConfigCommand};
pub use self::tenant::{tenant, TenantCommand};

/// Set when a line of output could not be written for a reason other than its reader having
/// gone: the command finishes what it does (its audit row included), then exits non-zero.
static OUTPUT_FAILED: AtomicBool = AtomicBool::new(false);

/// Writes one line of a command's output on stdout (see [`say!`]). A reader that has gone
/// (`| head`) had what it wanted: the rest of the output is dropped and the command carries on,
/// so that what it does is done whole.
pub fn say_line(line: std::fmt::Arguments) {
    use std::io::Write;
    let Err(e) = writeln!(std::io::stdout().lock(), "{line}") else {
        return;
    };
    if e.kind() != std::io::ErrorKind::BrokenPipe && !OUTPUT_FAILED.swap(true, Ordering::Relaxed) {
        eprintln!("codex-relay: cannot write the output: {e}");
    }
}

/// Whether some output could not be written (not counting a reader that went away).
pub fn output_failed() -> bool {
    OUTPUT_FAILED.load(Ordering::Relaxed)
}

#[derive(Debug, Parser)]
#[command(
    name = "codex-relay",
    version,
    about = "The OpenAI Responses API, served from a governed pool of Codex accounts"
)]
pub struct Cli {
    /// Settings file (TOML) layered over the embedded defaults; also CODEX_RELAY_CONFIG.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the relay.
    Serve,
    /// Manage the pool of Codex accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Manage the API keys clients use.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manage tenants: the teams that own API keys and share their limits.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage the bearer tokens of the admin plane.
    #[command(subcommand, name = "admin-token")]
    AdminToken(AdminTokenCommand),
    /// Check an installation: settings, store, master key, file modes, admin exposure, upstream,
    /// OAuth issuer, clock, accounts, free disk. Reads only.
    Doctor(DoctorArgs),
    /// Show the effective settings with the source of each value, or check a settings file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Look after the store itself: rotate its master key.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Write a consistent copy of the store to FILE (also while the server runs).
    Backup(BackupArgs),
    /// Replace the store with a backup (refused while a server runs on it).
    Restore(RestoreArgs),
    /// The audit trail: verify its chain, search it, export it; content capture.
    #[command(subcommand)]
    Audit(AuditCommand),
}

impl Command {
    /// True for the commands that only read the store (the listings, a backup), which therefore work on
    /// a store this process may not write.
    pub fn only_reads(&self) -> bool {
        matches!(
            self,
            Command::Account(AccountCommand::List(_))
                | Command::Key(KeyCommand::List(_))
                | Command::Tenant(TenantCommand::List(_))
                | Command::AdminToken(AdminTokenCommand::List(_))
                | Command::Backup(_)
        )
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}
