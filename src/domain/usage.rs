//! Whose usage is counted, and how much: the subjects quotas and rates are kept for (a key or a
//! tenant) and the token counts the relay reads from the upstream's `response.completed`.

use std::sync::Arc;

use serde::Deserialize;

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "UsageFields")]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
}

/// A `usage` object as the upstream sends it. The details are read leniently: a detail of an
/// unexpected shape counts as 0 rather than losing the counts quotas depend on.
#[derive(Deserialize)]
struct UsageFields {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    total_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<serde_json::Value>,
    #[serde(default)]
    output_tokens_details: Option<serde_json::Value>,
}

impl From<UsageFields> for Usage {
    fn from(fields: UsageFields) -> Usage {
        let detail = |details: &Option<serde_json::Value>, name: &str| {
            details
                .as_ref()
                .and_then(|d| d.get(name))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        };
        Usage {
            input_tokens: fields.input_tokens,
            output_tokens: fields.output_tokens,
            total_tokens: fields.total_tokens,
            cached_tokens: detail(&fields.input_tokens_details, "cached_tokens"),
            reasoning_tokens: detail(&fields.output_tokens_details, "reasoning_tokens"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_reads_the_cached_and_reasoning_details() {
        let usage: Usage = serde_json::from_str(
            r#"{"input_tokens":100,"input_tokens_details":{"cached_tokens":40},
                "output_tokens":30,"output_tokens_details":{"reasoning_tokens":12},
                "total_tokens":130}"#,
        )
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
            let usage: Usage = serde_json::from_str(&text).unwrap();
            assert_eq!(
                (usage.input_tokens, usage.total_tokens, usage.cached_tokens),
                (5, 7, 0),
                "{details}"
            );
        }
    }
}
