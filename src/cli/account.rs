//! `codex-relay account …`: the pool's accounts.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Read;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use super::new_account::{checked_label, store_account};
use super::{printable, printable_json, ListArgs};
use crate::oauth::auth_json;
use crate::obs::mask_email;
use crate::store::{rfc3339, Store};

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Import a Codex login from an auth.json file (`-` reads standard input).
    Import(ImportArgs),
    /// List the accounts of the pool.
    List(ListArgs),
    /// Remove an account (by relay id or ChatGPT account id) and its stored tokens.
    Remove { id: String },
    /// Log a ChatGPT account in without a browser on this machine (device code, pasted callback
    /// URL, or a callback listener reached through an SSH tunnel).
    Login(super::login::LoginArgs),
    /// Set how the pool routes to an account (priority, weight, calls in flight).
    Set(super::account_set::SetArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Path of the auth.json written by `codex login`, or `-`.
    pub file: String,
    /// A name for the account in listings (default: the masked email).
    #[arg(long)]
    pub label: Option<String>,
}

pub fn account(store: &Store, command: AccountCommand) -> anyhow::Result<()> {
    match command {
        AccountCommand::Import(args) => import(store, &args),
        AccountCommand::List(args) => list_accounts(store, args.json),
        AccountCommand::Login(_) => {
            anyhow::bail!("`account login` needs the settings; run it through the binary")
        }
        AccountCommand::Set(args) => super::account_set::set(store, &args),
        AccountCommand::Remove { id } => {
            store.remove_account(&id)?;
            eprintln!("removed account {id}; the running relay stops using it within seconds");
            Ok(())
        }
    }
}

fn import(store: &Store, args: &ImportArgs) -> anyhow::Result<()> {
    let text = if args.file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read auth.json from standard input")?;
        text
    } else {
        std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {}", args.file))?
    };
    let mut account = auth_json::parse(&text)?;
    account.label = checked_label(args.label.as_deref())?;
    store_account(store, &account)
}

fn list_accounts(store: &Store, as_json: bool) -> anyhow::Result<()> {
    let accounts = store.list_accounts()?;
    let now = std::time::SystemTime::now();
    if as_json {
        let mut rows = Vec::with_capacity(accounts.len());
        for a in &accounts {
            let pool = store.pool_row(&a.id)?;
            rows.push(json!({
                "id": a.id, "label": a.label,
                "email": a.email.as_deref().map(mask_email),
                "plan": a.plan, "state": a.shown_state(), "state_reason": a.state_reason,
                "reason": a.shown_reason(),
                "token_expires_at": a.token_expires_at.map(rfc3339),
                "last_refresh": a.last_refresh.map(rfc3339),
                "reauth_reason": a.reauth_reason,
                "last_refresh_error": a.last_refresh_error,
                "pool": crate::pool::view::row_json(&pool, now),
            }));
        }
        say!("{}", printable_json(&rows)?);
        return Ok(());
    }
    say!(
        "{:<36}  {:<20}  {:<24}  {:<10}  {:<15}  {:<20}  {:<17}  HEALTH",
        "ID",
        "LABEL",
        "EMAIL",
        "PLAN",
        "STATE",
        "TOKEN EXPIRES",
        "QUOTA LEFT"
    );
    for a in &accounts {
        let pool = crate::pool::view::row_json(&store.pool_row(&a.id)?, now);
        let quota = pool["quota"]["remaining_percent"]
            .as_f64()
            .map_or("-".to_owned(), |p| format!("{p:.0}%"));
        say!(
            "{:<36}  {:<20}  {:<24}  {:<10}  {:<15}  {:<20}  {:<17}  {}",
            printable(&a.id),
            printable(&a.label),
            printable(&a.email.as_deref().map_or("-".to_owned(), mask_email)),
            printable(a.plan.as_deref().unwrap_or("-")),
            a.shown_state(),
            a.token_expires_at.map_or("-".to_owned(), rfc3339),
            quota,
            pool["health"]["status"].as_str().unwrap_or("-"),
        );
    }
    for a in accounts.iter().filter(|a| a.unreadable.is_some()) {
        let reason = a.shown_reason().unwrap_or_default();
        eprintln!("account {} is unreadable: {reason}", printable(&a.id));
    }
    Ok(())
}
