//! `codex-relay key …`: the API keys clients use.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use anyhow::bail;
use clap::Subcommand;

use super::ListArgs;
use crate::store::{keys::reveal, Store};
use crate::time::rfc3339;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key; prints the key alone on stdout, once.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List API keys (never the keys themselves).
    List(ListArgs),
    /// Revoke an API key by id or name.
    Revoke { id: String },
}

pub fn key(store: &Store, command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Create { name } => {
            let name = name.trim();
            if name.is_empty() || name.len() > 64 {
                bail!("--name must be 1 to 64 characters");
            }
            let created = store.create_key(name)?;
            eprintln!(
                "created API key {} ({name}, {}…). It is shown only now: store it.",
                created.row.id, created.row.prefix
            );
            println!("{}", reveal(&created));
            Ok(())
        }
        KeyCommand::List(args) => {
            let keys = store.list_keys()?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
                return Ok(());
            }
            println!(
                "{:<36}  {:<20}  {:<16}  {:<20}  REVOKED",
                "ID", "NAME", "PREFIX", "CREATED"
            );
            for k in keys {
                println!(
                    "{:<36}  {:<20}  {:<16}  {:<20}  {}",
                    k.id,
                    k.name,
                    k.prefix,
                    rfc3339(k.created_at),
                    k.revoked_at.map_or("-".to_owned(), rfc3339)
                );
            }
            Ok(())
        }
        KeyCommand::Revoke { id } => {
            store.revoke_key(&id)?;
            eprintln!("revoked API key {id}; the running relay refuses it within seconds");
            Ok(())
        }
    }
}
