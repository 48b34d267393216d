//! `codex-relay tenant …`: the teams that own API keys and share their limits.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use clap::{Args, Subcommand};

use super::limits::{shown, split_list, LimitArgs};
use super::update::{update_tenant, UpdateTenant};
use super::{printable, printable_json, ListArgs};
use crate::governance::requests::TenantRequest;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant; prints its id alone on stdout.
    Create(CreateTenant),
    /// List tenants with their limits.
    List(ListArgs),
    /// Change a tenant's limits or hidden models; prints its id on stdout.
    Update(UpdateTenant),
    /// Delete a tenant by id or name (refused while it has active keys).
    Delete { id: String },
}

#[derive(Debug, Args)]
pub struct CreateTenant {
    pub name: String,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Models the tenant's keys neither see nor use (comma-separated names).
    #[arg(long, value_name = "a,b")]
    pub hide_models: Option<String>,
}

pub fn tenant(store: &Store, command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create(args) => {
            let request = TenantRequest {
                name: args.name.clone(),
                limits: args.limits.request(),
                hidden_models: args
                    .hide_models
                    .as_deref()
                    .map(split_list)
                    .unwrap_or_default(),
            };
            let created = store.create_tenant(&request.validate()?)?;
            eprintln!("created tenant {} ({})", created.name, created.id);
            say!("{}", created.id);
            Ok(())
        }
        TenantCommand::List(args) => list(store, args.json),
        TenantCommand::Update(args) => update_tenant(store, &args),
        TenantCommand::Delete { id } => {
            store.delete_tenant(&id)?;
            eprintln!("deleted tenant {}", printable(&id));
            Ok(())
        }
    }
}

fn list(store: &Store, json: bool) -> anyhow::Result<()> {
    let tenants = store.list_tenants()?;
    if json {
        say!("{}", printable_json(&tenants)?);
        return Ok(());
    }
    say!(
        "{:<36}  {:<20}  {:>6}  {:>10}  {:>12}  {:>14}  KEYS",
        "ID",
        "NAME",
        "RPM",
        "CONCURRENT",
        "DAILY TOKENS",
        "MONTHLY TOKENS"
    );
    for t in tenants {
        let l = &t.limits;
        say!(
            "{:<36}  {:<20}  {:>6}  {:>10}  {:>12}  {:>14}  {}",
            t.id,
            printable(&t.name),
            shown(l.rpm),
            shown(l.max_concurrent),
            shown(l.daily_tokens),
            shown(l.monthly_tokens),
            t.active_keys
        );
    }
    Ok(())
}
