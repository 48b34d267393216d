//! `codex-relay key …`: the API keys clients use.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use super::limits::{checked_name, model_list, shown, LimitArgs};
use super::{rfc3339, ListArgs};
use crate::store::{keys::reveal, NewKey, Store};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key; prints the key alone on stdout, once.
    Create(CreateKey),
    /// List API keys (never the keys themselves).
    List(ListArgs),
    /// Revoke an API key by id or name.
    Revoke { id: String },
}

#[derive(Debug, Args)]
pub struct CreateKey {
    #[arg(long)]
    pub name: String,
    /// The tenant (id or name) that owns the key; its limits apply on top of the key's.
    #[arg(long)]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Requests that may arrive at once before the rate applies (default: the rpm).
    #[arg(long, value_name = "N", requires = "rpm", value_parser = clap::value_parser!(u32).range(1..))]
    pub burst: Option<u32>,
    /// The only models the key may use (comma-separated names or aliases).
    #[arg(long, value_name = "a,b")]
    pub models: Option<String>,
    /// When the key stops working (RFC 3339, e.g. 2027-01-01T00:00:00Z).
    #[arg(long, value_name = "RFC3339")]
    pub expires: Option<String>,
}

impl CreateKey {
    fn new_key(&self) -> anyhow::Result<NewKey> {
        let expires_at = match &self.expires {
            Some(text) => {
                let at = chrono::DateTime::parse_from_rfc3339(text)
                    .with_context(|| format!("--expires {text} is not an RFC 3339 time"))?
                    .timestamp();
                if at <= chrono::Utc::now().timestamp() {
                    bail!("--expires {text} is in the past");
                }
                Some(at)
            }
            None => None,
        };
        Ok(NewKey {
            name: checked_name(&self.name, "--name")?,
            tenant: self.tenant.clone(),
            expires_at,
            models: match &self.models {
                Some(list) => Some(model_list(list, "--models")?),
                None => None,
            },
            limits: self.limits.limits(self.burst),
        })
    }
}

pub fn key(store: &Store, command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Create(args) => {
            let created = store.create_key_with(&args.new_key()?)?;
            eprintln!(
                "created API key {} ({}, {}…). It is shown only now: store it.",
                created.row.id, created.row.name, created.row.prefix
            );
            println!("{}", reveal(&created));
            Ok(())
        }
        KeyCommand::List(args) => list(store, args.json),
        KeyCommand::Revoke { id } => {
            store.revoke_key(&id)?;
            eprintln!("revoked API key {id}; the running relay refuses it within seconds");
            Ok(())
        }
    }
}

fn list(store: &Store, json: bool) -> anyhow::Result<()> {
    let keys = store.list_keys()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&keys)?);
        return Ok(());
    }
    println!(
        "{:<36}  {:<20}  {:<16}  {:<16}  {:>6}  {:<20}  {:<20}  REVOKED",
        "ID", "NAME", "PREFIX", "TENANT", "RPM", "CREATED", "EXPIRES"
    );
    for k in keys {
        println!(
            "{:<36}  {:<20}  {:<16}  {:<16}  {:>6}  {:<20}  {:<20}  {}",
            k.id,
            k.name,
            k.prefix,
            k.tenant.as_deref().unwrap_or("-"),
            shown(k.limits.rpm),
            rfc3339(k.created_at),
            k.expires_at.map_or("-".to_owned(), rfc3339),
            k.revoked_at.map_or("-".to_owned(), rfc3339)
        );
    }
    Ok(())
}
