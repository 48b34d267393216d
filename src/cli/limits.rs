//! Options shared by `key create` and `tenant create`: limits and model lists. Validation is the
//! admin API's ([`crate::governance::requests`]); this module only reads the command line.

use clap::Args;

/// Limits of a tenant (a key adds `--burst`). Read as any unsigned number: the bounds are the
/// admin API's ([`crate::bounds`]), so a number past them gets the same refusal naming the field.
#[derive(Debug, Clone, Default, Args)]
pub struct LimitArgs {
    /// Requests per minute (1 to 1000000).
    #[arg(long, value_name = "N")]
    pub rpm: Option<u64>,
    /// Requests in progress at once, a stream counting until it ends (1 to 100000).
    #[arg(long, value_name = "N")]
    pub max_concurrent: Option<u64>,
    /// Tokens per UTC day, counted from completed responses (1 to 10^12).
    #[arg(long, value_name = "N")]
    pub daily_tokens: Option<u64>,
    /// Tokens per UTC calendar month (1 to 10^12).
    #[arg(long, value_name = "N")]
    pub monthly_tokens: Option<u64>,
}

/// A number from the command line as the checks take it; one past `i64` is refused there.
pub fn wide(value: Option<u64>) -> Option<i64> {
    value.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// A comma-separated list of names.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(',').map(str::to_owned).collect()
}

/// A limit for a listing: the number, or `-` when none applies.
pub fn shown<T: ToString>(limit: Option<T>) -> String {
    limit.map_or_else(|| "-".to_owned(), |n| n.to_string())
}
