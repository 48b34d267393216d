//! Options shared by `key create` and `tenant create`: limits and model lists.

use anyhow::bail;
use clap::Args;

use crate::governance::policy::Limits;

/// Limits of a tenant (a key adds `--burst`).
#[derive(Debug, Clone, Default, Args)]
pub struct LimitArgs {
    /// Requests per minute.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rpm: Option<u32>,
    /// Requests in progress at once (a stream counts until it ends).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent: Option<u32>,
    /// Tokens per UTC day, counted from completed responses.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub daily_tokens: Option<u64>,
    /// Tokens per UTC calendar month.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub monthly_tokens: Option<u64>,
}

impl LimitArgs {
    pub fn limits(&self, burst: Option<u32>) -> Limits {
        Limits {
            rpm: self.rpm,
            burst,
            max_concurrent: self.max_concurrent,
            daily_tokens: self.daily_tokens,
            monthly_tokens: self.monthly_tokens,
        }
    }
}

/// A comma-separated list of model names, each non-empty.
pub fn model_list(text: &str, option: &str) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = text.split(',').map(|m| m.trim().to_owned()).collect();
    if names.iter().any(|m| m.is_empty() || m.len() > 128) {
        bail!("{option} must be a comma-separated list of model names");
    }
    Ok(names)
}

/// A name of 1 to 64 characters, trimmed.
pub fn checked_name(name: &str, option: &str) -> anyhow::Result<String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 {
        bail!("{option} must be 1 to 64 characters");
    }
    Ok(name.to_owned())
}

/// A limit for a listing: the number, or `-` when none applies.
pub fn shown<T: ToString>(limit: Option<T>) -> String {
    limit.map_or_else(|| "-".to_owned(), |n| n.to_string())
}
