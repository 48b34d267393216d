//! `codex-relay admin-token …`: bearer tokens of the admin plane.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use clap::{Subcommand, ValueEnum};
use secrecy::ExposeSecret;

use super::{printable, printable_json, ListArgs};
use crate::store::admin_tokens::AdminScope;
use crate::store::rfc3339;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum AdminTokenCommand {
    /// Create an admin token; prints the token alone on stdout, once.
    Create {
        /// `read` may look; `write` may also change accounts, keys and tenants.
        #[arg(long, value_enum)]
        scope: ScopeArg,
        /// A name for listings (default: the scope and the date).
        #[arg(long)]
        name: Option<String>,
    },
    /// List admin tokens (never the tokens themselves).
    List(ListArgs),
    /// Revoke an admin token by id or name.
    Revoke { id: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScopeArg {
    Read,
    Write,
}

impl From<ScopeArg> for AdminScope {
    fn from(scope: ScopeArg) -> AdminScope {
        match scope {
            ScopeArg::Read => AdminScope::Read,
            ScopeArg::Write => AdminScope::Write,
        }
    }
}

pub fn admin_token(store: &Store, command: AdminTokenCommand) -> anyhow::Result<()> {
    match command {
        AdminTokenCommand::Create { scope, name } => create(store, scope.into(), name),
        AdminTokenCommand::List(args) => list(store, args.json),
        AdminTokenCommand::Revoke { id } => {
            store.revoke_admin_token(&id)?;
            eprintln!("revoked admin token {id}; the running relay refuses it within seconds");
            Ok(())
        }
    }
}

fn create(store: &Store, scope: AdminScope, name: Option<String>) -> anyhow::Result<()> {
    let name = match name {
        Some(name) => crate::bounds::name("--name", &name)?,
        None => format!(
            "{}-{}",
            scope.name(),
            chrono::Utc::now().format("%Y%m%d%H%M%S")
        ),
    };
    let created = store.create_admin_token(&name, scope)?;
    eprintln!(
        "created admin token {} ({name}, scope {}, {}…). It is shown only now: store it.",
        created.row.id,
        scope.name(),
        created.row.prefix
    );
    say!("{}", created.token.expose_secret());
    Ok(())
}

fn list(store: &Store, as_json: bool) -> anyhow::Result<()> {
    let tokens = store.list_admin_tokens()?;
    if as_json {
        say!("{}", printable_json(&tokens)?);
        return Ok(());
    }
    say!(
        "{:<36}  {:<20}  {:<6}  {:<22}  {:<20}  REVOKED",
        "ID",
        "NAME",
        "SCOPE",
        "PREFIX",
        "CREATED"
    );
    for t in tokens {
        say!(
            "{:<36}  {:<20}  {:<6}  {:<22}  {:<20}  {}",
            t.id,
            printable(&t.name),
            t.scope.name(),
            t.prefix,
            rfc3339(t.created_at),
            t.revoked_at.map_or("-".to_owned(), rfc3339)
        );
    }
    Ok(())
}
