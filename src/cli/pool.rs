//! `codex-relay account set ID …`: the operator's routing parameters of one account. The running
//! server follows the change within `store.sync_interval_ms`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use clap::Args;

use crate::store::{RoutingChange, Store};

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The relay id or the ChatGPT account id.
    pub id: String,
    /// Accounts with a higher priority are used first (default 0; may be negative).
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Relative share of the traffic (at least 1; default 1).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub weight: Option<u32>,
    /// Most calls in flight on this account; 0 means no cap.
    #[arg(long, conflicts_with = "default_max_in_flight")]
    pub max_in_flight: Option<u32>,
    /// Go back to the `routing.max_in_flight` setting.
    #[arg(long)]
    pub default_max_in_flight: bool,
}

pub fn set(store: &Store, args: &SetArgs) -> anyhow::Result<()> {
    let change = RoutingChange {
        priority: args.priority,
        weight: args.weight,
        max_in_flight: match (args.max_in_flight, args.default_max_in_flight) {
            (_, true) => Some(None),
            (Some(max), false) => Some(Some(max)),
            (None, false) => None,
        },
    };
    if change.priority.is_none() && change.weight.is_none() && change.max_in_flight.is_none() {
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
