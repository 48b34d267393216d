//! `codex-relay tenant update` and `codex-relay key update`: change limits, model lists and
//! expiry of what exists, without re-issuing keys. An option given sets its field; a field named
//! in `--clear` is removed; the rest stays. Validation is the admin API's
//! ([`crate::governance::updates`]); the running relay applies the change within
//! `store.sync_interval_ms`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use clap::Args;

use super::limits::{split_list, Cleared, KeyLimitArgs, LimitArgs};
use super::printable;
use crate::governance::updates::{KeyUpdate, TenantUpdate};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct UpdateTenant {
    /// The tenant's id or name.
    pub id: String,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Models the tenant's keys neither see nor use (comma-separated; replaces the list).
    #[arg(long, value_name = "a,b")]
    pub hide_models: Option<String>,
    /// Fields to remove (comma-separated): rpm, max-concurrent, daily-tokens, monthly-tokens,
    /// hide-models.
    #[arg(long, value_name = "a,b")]
    pub clear: Option<String>,
}

#[derive(Debug, Args)]
pub struct UpdateKey {
    /// The key's id, or its name when only one active key has it.
    pub id: String,
    #[command(flatten)]
    pub limits: KeyLimitArgs,
    /// The only models the key may use (comma-separated; replaces the list).
    #[arg(long, value_name = "a,b")]
    pub models: Option<String>,
    /// When the key stops working (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub expires: Option<String>,
    /// Fields to remove (comma-separated): rpm, burst, max-concurrent, daily-tokens,
    /// monthly-tokens, models, expires.
    #[arg(long, value_name = "a,b")]
    pub clear: Option<String>,
}

impl UpdateTenant {
    fn update(&self) -> anyhow::Result<TenantUpdate> {
        let mut clear = Cleared::parse(self.clear.as_deref());
        let update = TenantUpdate {
            limits: self.limits.changes(&mut clear)?,
            hidden_models: clear
                .change("hide-models", self.hide_models.as_deref().map(split_list))?,
        };
        clear.finish()?;
        Ok(update)
    }
}

impl UpdateKey {
    fn update(&self) -> anyhow::Result<KeyUpdate> {
        let mut clear = Cleared::parse(self.clear.as_deref());
        let update = KeyUpdate {
            limits: self.limits.changes(&mut clear)?,
            models: clear.change("models", self.models.as_deref().map(split_list))?,
            expires: clear.change("expires", self.expires.clone())?,
        };
        clear.finish()?;
        Ok(update)
    }
}

pub fn update_tenant(store: &Store, args: &UpdateTenant) -> anyhow::Result<()> {
    let update = args.update()?;
    let row = store.update_tenant(&args.id, |now| {
        update.apply(&now.limits, &now.hidden_models)
    })??;
    eprintln!(
        "updated tenant {} ({}); the running relay applies it within seconds",
        printable(&row.name),
        row.id
    );
    say!("{}", row.id);
    Ok(())
}

pub fn update_key(store: &Store, args: &UpdateKey) -> anyhow::Result<()> {
    let update = args.update()?;
    let now_unix = chrono::Utc::now().timestamp();
    let row = store.update_key(&args.id, |now| update.apply(now, now_unix))??;
    eprintln!(
        "updated API key {} ({}); the running relay applies it within seconds",
        row.id,
        printable(&row.name)
    );
    say!("{}", row.id);
    Ok(())
}
