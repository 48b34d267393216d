//! Whose usage is counted, and how much: the subjects quotas and rates are kept for (a key or a
//! tenant) and the token counts the relay reads from the upstream's `response.completed`.

use std::sync::Arc;

use serde_json::Value;

/// Whose usage a row counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Key,
    Tenant,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::Tenant => "tenant",
        }
    }

    /// The scope a stored name stands for.
    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "key" => Some(Scope::Key),
            "tenant" => Some(Scope::Tenant),
            _ => None,
        }
    }
}

/// A key or a tenant, by id.
pub type Subject = (Scope, Arc<str>);

/// The counts the relay itself reads (logs, quotas and the token metrics), from a Responses
/// `usage` object. `cached_tokens` is the part of `input_tokens` the upstream served from its
/// cache (`input_tokens_details.cached_tokens`), `reasoning_tokens` the part of `output_tokens`
/// spent reasoning (`output_tokens_details.reasoning_tokens`). Quotas count `total_tokens` only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Reads a `usage` object already parsed (every completed call has one): `None` when it is
    /// not an object or one of its counts is not a whole number; a missing count is 0. The
    /// details are read leniently: a detail of an unexpected shape counts as 0 rather than
    /// losing the counts quotas depend on. The object is walked once, in place: a lookup by
    /// name would hash each name (SipHash) for a handful of keys.
    pub fn from_json(usage: &Value) -> Option<Usage> {
        let mut read = Usage::default();
        for (name, value) in usage.as_object()? {
            match name.as_str() {
                "input_tokens" => read.input_tokens = value.as_u64()?,
                "output_tokens" => read.output_tokens = value.as_u64()?,
                "total_tokens" => read.total_tokens = value.as_u64()?,
                "input_tokens_details" => read.cached_tokens = detail(value, "cached_tokens"),
                "output_tokens_details" => {
                    read.reasoning_tokens = detail(value, "reasoning_tokens");
                }
                _ => {}
            }
        }
        Some(read)
    }
}

/// The count `name` of a details object; 0 when there is none, or it is not a whole number.
fn detail(details: &Value, name: &str) -> u64 {
    let Some(details) = details.as_object() else {
        return 0;
    };
    details
        .iter()
        .find(|(key, _)| key.as_str() == name)
        .and_then(|(_, count)| count.as_u64())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn a_usage_that_is_no_object_or_whose_counts_are_not_whole_is_none() {
        for text in [
            "null",
            "[]",
            r#""7""#,
            r#"{"input_tokens":"5"}"#,
            r#"{"total_tokens":-1}"#,
            r#"{"output_tokens":null}"#,
        ] {
            assert_eq!(Usage::from_json(&json(text)), None, "{text}");
        }
        assert_eq!(Usage::from_json(&json("{}")), Some(Usage::default()));
    }

    #[test]
    fn usage_reads_the_cached_and_reasoning_details() {
        let usage = Usage::from_json(&json(
            r#"{"input_tokens":100,"input_tokens_details":{"cached_tokens":40},
                "output_tokens":30,"output_tokens_details":{"reasoning_tokens":12},
                "total_tokens":130}"#,
        ))
        .unwrap();
        let expected = Usage {
            input_tokens: 100,
            output_tokens: 30,
            total_tokens: 130,
            cached_tokens: 40,
            reasoning_tokens: 12,
        };
        assert_eq!(usage, expected);
    }

    #[test]
    fn details_of_an_unexpected_shape_leave_the_totals_intact() {
        for details in [r#"null"#, r#""many""#, r#"{"cached_tokens":"40"}"#, r#"[]"#] {
            let text = format!(
                r#"{{"input_tokens":5,"input_tokens_details":{details},"output_tokens":2,"total_tokens":7}}"#
            );
            let usage = Usage::from_json(&json(&text)).unwrap();
            assert_eq!(
                (usage.input_tokens, usage.total_tokens, usage.cached_tokens),
                (5, 7, 0),
                "{details}"
            );
        }
    }
}
