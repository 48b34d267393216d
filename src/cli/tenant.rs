//! `codex-relay tenant …`: the teams that own API keys and share their limits.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use clap::{Args, Subcommand};

use super::limits::{checked_name, model_list, shown, LimitArgs};
use super::ListArgs;
use crate::store::{NewTenant, Store};

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant; prints its id alone on stdout.
    Create(CreateTenant),
    /// List tenants with their limits.
    List(ListArgs),
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
            let new = NewTenant {
                name: checked_name(&args.name, "NAME")?,
                limits: args.limits.limits(None),
                hidden_models: match &args.hide_models {
                    Some(list) => model_list(list, "--hide-models")?,
                    None => Vec::new(),
                },
            };
            let created = store.create_tenant(&new)?;
            eprintln!("created tenant {} ({})", created.name, created.id);
            println!("{}", created.id);
            Ok(())
        }
        TenantCommand::List(args) => list(store, args.json),
        TenantCommand::Delete { id } => {
            store.delete_tenant(&id)?;
            eprintln!("deleted tenant {id}");
            Ok(())
        }
    }
}

fn list(store: &Store, json: bool) -> anyhow::Result<()> {
    let tenants = store.list_tenants()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&tenants)?);
        return Ok(());
    }
    println!(
        "{:<36}  {:<20}  {:>6}  {:>10}  {:>12}  {:>14}  KEYS",
        "ID", "NAME", "RPM", "CONCURRENT", "DAILY TOKENS", "MONTHLY TOKENS"
    );
    for t in tenants {
        let l = &t.limits;
        println!(
            "{:<36}  {:<20}  {:>6}  {:>10}  {:>12}  {:>14}  {}",
            t.id,
            t.name,
            shown(l.rpm),
            shown(l.max_concurrent),
            shown(l.daily_tokens),
            shown(l.monthly_tokens),
            t.active_keys
        );
    }
    Ok(())
}
