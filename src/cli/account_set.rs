//! `codex-relay account set ID …`: the operator's routing parameters of one account. The running
//! server follows the change within `store.sync_interval_ms`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use clap::Args;

use super::limits::wide;
use crate::store::{RoutingChange, Store};

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The relay id or the ChatGPT account id.
    pub id: String,
    /// Accounts with a higher priority are used first (-1000 to 1000; default 0).
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i64>,
    /// Relative share of the traffic (1 to 1000; default 1).
    #[arg(long)]
    pub weight: Option<u64>,
    /// Most calls in flight on this account (0 to 100000); 0 means no cap.
    #[arg(long, conflicts_with = "default_max_in_flight")]
    pub max_in_flight: Option<u64>,
    /// Go back to the `routing.max_in_flight` setting.
    #[arg(long)]
    pub default_max_in_flight: bool,
}

pub fn set(store: &Store, args: &SetArgs) -> anyhow::Result<()> {
    let max_in_flight = match (wide(args.max_in_flight), args.default_max_in_flight) {
        (_, true) => Some(None),
        (Some(max), false) => Some(Some(max)),
        (None, false) => None,
    };
    let change = RoutingChange::checked(args.priority, wide(args.weight), max_in_flight)?;
    if change.is_empty() {
        anyhow::bail!(
            "nothing to set: give --priority, --weight, --max-in-flight or --default-max-in-flight"
        );
    }
    let id = store.set_routing(&args.id, change)?;
    let row = store.pool_row(&id)?;
    let max = row
        .routing
        .max_in_flight
        .map_or("the routing.max_in_flight default".to_owned(), |m| {
            m.to_string()
        });
    eprintln!(
        "account {id}: priority {}, weight {}, max in flight {max}; the running relay follows within seconds",
        row.routing.priority, row.routing.weight
    );
    Ok(())
}
