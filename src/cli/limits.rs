//! Options shared by `key create` and `tenant create`: limits and model lists. Validation is the
//! admin API's ([`crate::governance::requests`]); this module only reads the command line.

use clap::Args;

/// Limits of a tenant (a key adds `--burst`).
#[derive(Debug, Clone, Default, Args)]
pub struct LimitArgs {
    /// Requests per minute.
    #[arg(long, value_name = "N")]
    pub rpm: Option<u32>,
    /// Requests in progress at once (a stream counts until it ends).
    #[arg(long, value_name = "N")]
    pub max_concurrent: Option<u32>,
    /// Tokens per UTC day, counted from completed responses.
    #[arg(long, value_name = "N")]
    pub daily_tokens: Option<u64>,
    /// Tokens per UTC calendar month.
    #[arg(long, value_name = "N")]
    pub monthly_tokens: Option<u64>,
}

/// A comma-separated list of names.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(',').map(str::to_owned).collect()
}

/// A limit for a listing: the number, or `-` when none applies.
pub fn shown<T: ToString>(limit: Option<T>) -> String {
    limit.map_or_else(|| "-".to_owned(), |n| n.to_string())
}
