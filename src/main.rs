//! The `codex-relay` binary: parse the command line, load settings, open the store, dispatch.
#![allow(clippy::print_stderr)]

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use codex_relay::cli::{self, Cli, Command};
use codex_relay::obs::{build_switched_logger, LogLevelSwitch, LogSink};
use codex_relay::settings::Settings;
use codex_relay::startup::{Application, RelayLog};
use codex_relay::store::{sealing_key_id, KeySource, MasterKey, Store, StoreLock};
use slog::{error, info, warn};

// mimalloc keeps less per held stream than the system allocator and hands freed pages back; its
// transparent huge pages are off, since they would pin 2 MiB per arena page in RSS (both measured
// in docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let Cli { config, command } = Cli::parse();
    // These read the settings (and the store) themselves, and never open or create anything.
    let command = match command {
        Command::Doctor(args) => return cli::doctor(config.as_deref(), &args),
        Command::Config(command) => return cli::config(config.as_deref(), command),
        command => command,
    };
    let settings = match Settings::load(config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("codex-relay: {e}");
            return ExitCode::from(2);
        }
    };
    // The audit trail is a file of its own: no store, no master key (content capture needs both).
    let command = match command {
        Command::Audit(command) if !matches!(command, cli::AuditCommand::Capture(_)) => {
            return cli::audit(&settings, command)
        }
        command => command,
    };
    match run(command, settings) {
        Ok(()) if cli::output_failed() => ExitCode::FAILURE,
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // An error may quote a name from the store: never a raw control byte to the terminal.
            eprintln!("codex-relay: {}", cli::printable(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Runs `command`; an administrative act is recorded in the audit trail with its result.
fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    let act = cli::Act::of(&command);
    let result = run_command(command, &settings);
    act.record(&settings, &result);
    result
}

fn run_command(command: Command, settings: &Settings) -> anyhow::Result<()> {
    let settings = settings.clone();
    let path = &settings.store.path;
    // A restore needs the key of the backup, and the store it replaces may not open at all.
    let sealed_with = match &command {
        Command::Restore(args) => sealing_key_id(&args.file)?,
        _ => sealing_key_id(path)?,
    };
    let (key, source) = MasterKey::resolve(
        path,
        sealed_with.as_deref(),
        Duration::from_secs(settings.store.master_key_command_timeout_secs),
    )?;
    if let KeySource::Generated(path) = &source {
        eprintln!(
            "codex-relay: generated a new master key at {} (mode 0600). Back it up: without it the \
             stored credentials cannot be opened.",
            path.display()
        );
    }
    // A rekey opens the store itself (after an interruption its key may already be the new
    // one); a restore replaces a store that may not open at all.
    match &command {
        Command::Store(cli::StoreCommand::Rekey(args)) => return cli::rekey(&settings, args, key),
        Command::Restore(args) => return cli::restore(path, &key, args),
        _ => {}
    }
    let pool_size = settings.store.pool_size;
    // A listing only reads, so it works on a store this process cannot write.
    let store = if command.only_reads() && path.exists() {
        Store::open_read_only(path, pool_size, key)?
    } else {
        Store::open(path, pool_size, key)?
    };
    if !matches!(command, Command::Serve) {
        for warning in store.warnings() {
            eprintln!("codex-relay: warning: {}", cli::printable(warning));
        }
    }
    match command {
        Command::Serve => serve(settings, store, &source),
        Command::Account(cli::AccountCommand::Login(args)) => cli::login(&store, &settings, args),
        Command::Account(command) => cli::account(&store, command),
        Command::Key(command) => cli::key(&store, command),
        Command::Tenant(command) => cli::tenant(&store, command),
        Command::AdminToken(command) => cli::admin_token(&store, command),
        Command::Audit(cli::AuditCommand::Capture(command)) => {
            cli::capture(&store, &settings, command)
        }
        Command::Backup(args) => cli::backup(&store, &settings, &args),
        // Dispatched by `main` before the store opens.
        Command::Doctor(_)
        | Command::Config(_)
        | Command::Store(_)
        | Command::Restore(_)
        | Command::Audit(_) => Ok(()),
    }
}

fn serve(settings: Settings, store: Store, source: &KeySource) -> anyhow::Result<()> {
    // A settings reload (SIGHUP, the admin API) may change the level while the relay runs.
    let level = LogLevelSwitch::new(settings.log.level);
    let (log, _flush_on_exit) = build_switched_logger(LogSink::Stdout, &level);
    match source {
        KeySource::Generated(path) => warn!(log, "generated a new master key; back it up";
            "path" => path.display().to_string()),
        KeySource::File(path) => info!(log, "master key read from file";
            "path" => path.display().to_string(), "key_id" => store.master_key().id_hex()),
        KeySource::Environment => info!(log, "master key read from CODEX_RELAY_MASTER_KEY";
            "key_id" => store.master_key().id_hex()),
        KeySource::Command => info!(log, "master key read from CODEX_RELAY_MASTER_KEY_COMMAND";
            "key_id" => store.master_key().id_hex()),
    }
    for warning in store.warnings() {
        warn!(log, "the store is not private"; "detail" => warning.as_str());
    }
    // Started on the store's current key, this server needs no handover of an older one, and
    // none should outlive the rotation: each is a newer key sealed under a retired one.
    match store.forget_key_handovers() {
        Ok(0) => {}
        Ok(n) => info!(log, "removed the key handovers of earlier rekeys"; "count" => n),
        Err(e) => warn!(log, "could not remove the key handovers of earlier rekeys";
            "error" => e.to_string()),
    }
    // Held while the server runs: `restore` refuses while it is.
    let _lock = StoreLock::for_server(&settings.store.path)?;
    let system = actix_web::rt::System::new();
    let result = system.block_on(async {
        let relay_log = RelayLog {
            log: log.clone(),
            level: Some(level),
        };
        let app = Application::build(settings, store, relay_log).await?;
        app.run_until_stopped().await?;
        anyhow::Ok(())
    });
    if let Err(e) = &result {
        error!(log, "the relay stopped with an error"; "error" => format!("{e:#}"));
    }
    info!(log, "stopped");
    result
}
