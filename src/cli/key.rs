//! `codex-relay key …`: the API keys clients use.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use clap::{Args, Subcommand};

use super::limits::{shown, split_list, KeyLimitArgs};
use super::update::{update_key, UpdateKey};
use super::{printable, printable_json, ListArgs};
use crate::governance::requests::KeyRequest;
use crate::store::rfc3339;
use crate::store::{keys::reveal, Store};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key; prints the key alone on stdout, once.
    Create(CreateKey),
    /// List API keys (never the keys themselves).
    List(ListArgs),
    /// Change a key's limits, allowed models or expiry; prints its id on stdout.
    Update(UpdateKey),
    /// Revoke an API key by id, or by a name only one active key has.
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
    pub limits: KeyLimitArgs,
    /// The only models the key may use (comma-separated names or aliases).
    #[arg(long, value_name = "a,b")]
    pub models: Option<String>,
    /// When the key stops working (RFC 3339, e.g. 2027-01-01T00:00:00Z).
    #[arg(long, value_name = "RFC3339")]
    pub expires: Option<String>,
}

impl CreateKey {
    fn request(&self) -> KeyRequest {
        KeyRequest {
            name: self.name.clone(),
            tenant: self.tenant.clone(),
            limits: self.limits.request(),
            models: self.models.as_deref().map(split_list),
            expires: self.expires.clone(),
        }
    }
}

pub fn key(store: &Store, command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Create(args) => {
            let new = args.request().validate(chrono::Utc::now().timestamp())?;
            let created = store.create_key_with(&new)?;
            eprintln!(
                "created API key {} ({}, {}…). It is shown only now: store it.",
                created.row.id, created.row.name, created.row.prefix
            );
            say!("{}", reveal(&created));
            Ok(())
        }
        KeyCommand::List(args) => list(store, args.json),
        KeyCommand::Update(args) => update_key(store, &args),
        KeyCommand::Revoke { id } => {
            let revoked = store.revoke_key(&id)?;
            eprintln!("revoked API key {revoked}; the running relay refuses it within seconds");
            Ok(())
        }
    }
}

fn list(store: &Store, json: bool) -> anyhow::Result<()> {
    let keys = store.list_keys()?;
    if json {
        say!("{}", printable_json(&keys)?);
        return Ok(());
    }
    say!(
        "{:<36}  {:<20}  {:<16}  {:<16}  {:>6}  {:<20}  {:<20}  REVOKED",
        "ID",
        "NAME",
        "PREFIX",
        "TENANT",
        "RPM",
        "CREATED",
        "EXPIRES"
    );
    for k in keys {
        say!(
            "{:<36}  {:<20}  {:<16}  {:<16}  {:>6}  {:<20}  {:<20}  {}",
            k.id,
            printable(&k.name),
            k.prefix,
            printable(k.tenant.as_deref().unwrap_or("-")),
            shown(k.limits.rpm),
            rfc3339(k.created_at),
            k.expires_at.map_or("-".to_owned(), rfc3339),
            k.revoked_at.map_or("-".to_owned(), rfc3339)
        );
    }
    Ok(())
}
