//! `codex-relay tenant update` and `codex-relay key update`: change limits, model lists and
//! expiry of what exists, without re-issuing keys. An option given sets its field; a field named
//! in `--clear` is removed; the rest stays. Validation is the admin API's
//! ([`crate::governance::updates`]); the running relay applies the change within
//! `store.sync_interval_ms`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use clap::Args;

use super::limits::{split_list, wide, LimitArgs};
use super::printable;
use crate::governance::updates::{Change, KeyUpdate, TenantUpdate};
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
    pub limits: LimitArgs,
    /// Requests that may arrive at once before the rate applies.
    #[arg(long, value_name = "N")]
    pub burst: Option<u64>,
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

/// The fields named in `--clear`, checked against those the command knows.
struct Cleared(Vec<String>);

impl Cleared {
    fn parse(text: Option<&str>, known: &[&str]) -> anyhow::Result<Cleared> {
        let names: Vec<String> = text
            .map(split_list)
            .unwrap_or_default()
            .into_iter()
            .map(|n| n.trim().to_owned())
            .collect();
        if let Some(unknown) = names.iter().find(|n| !known.contains(&n.as_str())) {
            anyhow::bail!(
                "--clear: unknown field {unknown} (known: {})",
                known.join(", ")
            );
        }
        Ok(Cleared(names))
    }

    /// The change of one field: set when given, removed when cleared; both is a mistake.
    fn change<T>(&self, field: &str, value: Option<T>) -> anyhow::Result<Change<T>> {
        let cleared = self.0.iter().any(|n| n == field);
        match (value, cleared) {
            (Some(_), true) => anyhow::bail!("--{field} is both given and cleared"),
            (Some(value), false) => Ok(Some(Some(value))),
            (None, true) => Ok(Some(None)),
            (None, false) => Ok(None),
        }
    }
}

const TENANT_FIELDS: &[&str] = &[
    "rpm",
    "max-concurrent",
    "daily-tokens",
    "monthly-tokens",
    "hide-models",
];
const KEY_FIELDS: &[&str] = &[
    "rpm",
    "burst",
    "max-concurrent",
    "daily-tokens",
    "monthly-tokens",
    "models",
    "expires",
];

impl UpdateTenant {
    fn update(&self) -> anyhow::Result<TenantUpdate> {
        let clear = Cleared::parse(self.clear.as_deref(), TENANT_FIELDS)?;
        let l = &self.limits;
        Ok(TenantUpdate {
            rpm: clear.change("rpm", wide(l.rpm))?,
            max_concurrent: clear.change("max-concurrent", wide(l.max_concurrent))?,
            daily_tokens: clear.change("daily-tokens", wide(l.daily_tokens))?,
            monthly_tokens: clear.change("monthly-tokens", wide(l.monthly_tokens))?,
            hidden_models: clear
                .change("hide-models", self.hide_models.as_deref().map(split_list))?,
        })
    }
}

impl UpdateKey {
    fn update(&self) -> anyhow::Result<KeyUpdate> {
        let clear = Cleared::parse(self.clear.as_deref(), KEY_FIELDS)?;
        let l = &self.limits;
        Ok(KeyUpdate {
            rpm: clear.change("rpm", wide(l.rpm))?,
            burst: clear.change("burst", wide(self.burst))?,
            max_concurrent: clear.change("max-concurrent", wide(l.max_concurrent))?,
            daily_tokens: clear.change("daily-tokens", wide(l.daily_tokens))?,
            monthly_tokens: clear.change("monthly-tokens", wide(l.monthly_tokens))?,
            models: clear.change("models", self.models.as_deref().map(split_list))?,
            expires: clear.change("expires", self.expires.clone())?,
        })
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
    println!("{}", row.id);
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
    println!("{}", row.id);
    Ok(())
}
