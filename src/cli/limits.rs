//! The limit options of `create` and `update`, for tenants ([`LimitArgs`]) and keys
//! ([`KeyLimitArgs`]), and their one conversion each way: to what a creation asks for, and to
//! what an update changes. Validation is the admin API's ([`crate::governance::requests`]);
//! this module only reads the command line.

use clap::Args;

use crate::governance::requests::LimitRequest;
use crate::governance::updates::{Change, LimitChanges};

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

/// Limits of a key: a tenant's, and the burst only a key has.
#[derive(Debug, Clone, Default, Args)]
pub struct KeyLimitArgs {
    #[command(flatten)]
    pub shared: LimitArgs,
    /// Requests that may arrive at once before the rate applies (default: the rpm; at most 60
    /// times the rpm).
    #[arg(long, value_name = "N")]
    pub burst: Option<u64>,
}

impl LimitArgs {
    /// The limits a creation asks for.
    pub fn request(&self) -> LimitRequest {
        LimitRequest {
            rpm: wide(self.rpm),
            burst: None,
            max_concurrent: wide(self.max_concurrent),
            daily_tokens: wide(self.daily_tokens),
            monthly_tokens: wide(self.monthly_tokens),
        }
    }

    /// The limits an update changes: a given option sets its limit, one in `--clear` removes it.
    pub fn changes(&self, clear: &mut Cleared) -> anyhow::Result<LimitChanges> {
        Ok(LimitChanges {
            rpm: clear.change("rpm", wide(self.rpm))?,
            burst: None,
            max_concurrent: clear.change("max-concurrent", wide(self.max_concurrent))?,
            daily_tokens: clear.change("daily-tokens", wide(self.daily_tokens))?,
            monthly_tokens: clear.change("monthly-tokens", wide(self.monthly_tokens))?,
        })
    }
}

impl KeyLimitArgs {
    /// The limits a key's creation asks for.
    pub fn request(&self) -> LimitRequest {
        LimitRequest {
            burst: wide(self.burst),
            ..self.shared.request()
        }
    }

    /// The limits a key's update changes.
    pub fn changes(&self, clear: &mut Cleared) -> anyhow::Result<LimitChanges> {
        let mut changes = self.shared.changes(clear)?;
        changes.burst = clear.change("burst", wide(self.burst))?;
        Ok(changes)
    }
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

/// The fields named in an update's `--clear`. The fields a command knows are those its
/// conversion asks about ([`Cleared::change`]); [`Cleared::finish`] refuses any other.
pub struct Cleared {
    named: Vec<String>,
    asked: Vec<&'static str>,
}

impl Cleared {
    pub fn parse(text: Option<&str>) -> Cleared {
        let named = text.map(split_list).unwrap_or_default();
        Cleared {
            named: named.into_iter().map(|n| n.trim().to_owned()).collect(),
            asked: Vec::new(),
        }
    }

    /// The change of one field: set when given, removed when cleared; both is a mistake.
    pub fn change<T>(
        &mut self,
        field: &'static str,
        value: Option<T>,
    ) -> anyhow::Result<Change<T>> {
        self.asked.push(field);
        let cleared = self.named.iter().any(|n| n == field);
        match (value, cleared) {
            (Some(_), true) => anyhow::bail!("--{field} is both given and cleared"),
            (Some(value), false) => Ok(Some(Some(value))),
            (None, true) => Ok(Some(None)),
            (None, false) => Ok(None),
        }
    }

    /// Refuses a cleared field the command does not know.
    pub fn finish(self) -> anyhow::Result<()> {
        let known = |n: &&String| self.asked.contains(&n.as_str());
        if let Some(unknown) = self.named.iter().find(|n| !known(n)) {
            anyhow::bail!(
                "--clear: unknown field {unknown} (known: {})",
                self.asked.join(", ")
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_limit() -> KeyLimitArgs {
        KeyLimitArgs {
            shared: LimitArgs {
                rpm: Some(1),
                max_concurrent: Some(2),
                daily_tokens: Some(3),
                monthly_tokens: Some(u64::MAX),
            },
            burst: Some(5),
        }
    }

    #[test]
    fn every_limit_option_reaches_the_request_and_the_changes() {
        let request = every_limit().request();
        assert_eq!(
            request,
            LimitRequest {
                rpm: Some(1),
                burst: Some(5),
                max_concurrent: Some(2),
                daily_tokens: Some(3),
                monthly_tokens: Some(i64::MAX),
            }
        );
        let tenant = every_limit().shared.request();
        assert_eq!(tenant.burst, None, "a tenant has no --burst");

        let mut clear = Cleared::parse(None);
        let changes = every_limit().changes(&mut clear).unwrap();
        assert_eq!(changes.rpm, Some(request.rpm));
        assert_eq!(changes.burst, Some(request.burst));
        assert_eq!(changes.monthly_tokens, Some(request.monthly_tokens));

        let mut clear = Cleared::parse(Some("daily-tokens, burst"));
        let only_cleared = KeyLimitArgs::default().changes(&mut clear).unwrap();
        assert_eq!(only_cleared.daily_tokens, Some(None));
        assert_eq!(only_cleared.burst, Some(None));
        assert_eq!(only_cleared.rpm, None, "neither given nor cleared: kept");
        clear.finish().unwrap();
    }

    #[test]
    fn a_cleared_field_the_command_does_not_know_is_refused() {
        let mut clear = Cleared::parse(Some("burst"));
        LimitArgs::default().changes(&mut clear).unwrap();
        let refusal = clear.finish().unwrap_err().to_string();
        assert!(
            refusal.starts_with("--clear: unknown field burst (known: rpm,"),
            "{refusal}"
        );
    }
}
