//! Capture rules as the request path asks them: the small set of captures running now, each for
//! one tenant or one key until its end time. Pure: the caller passes `now`.

use std::sync::Arc;

use crate::bounds::{invalid, Invalid};

/// What one capture covers: every call of a tenant's keys, or every call of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Tenant(String),
    Key(String),
}

impl Subject {
    /// `tenant` or `key`, as rows and views name the scope.
    pub fn scope(&self) -> &'static str {
        match self {
            Subject::Tenant(_) => "tenant",
            Subject::Key(_) => "key",
        }
    }

    /// The tenant's or the key's id.
    pub fn id(&self) -> &str {
        match self {
            Subject::Tenant(id) | Subject::Key(id) => id,
        }
    }

    /// The subject a row names (`scope`, `id`); `None` for a scope this build does not know.
    pub fn from_row(scope: &str, id: String) -> Option<Subject> {
        match scope {
            "tenant" => Some(Subject::Tenant(id)),
            "key" => Some(Subject::Key(id)),
            _ => None,
        }
    }

    /// How audit lines and listings name it: `key:ID`, `tenant:ID`.
    pub fn target(&self) -> String {
        format!("{}:{}", self.scope(), self.id())
    }
}

/// A capture that was started, not stopped, and whose end time has not come (when read).
#[derive(Debug, Clone)]
pub struct ActiveRule {
    pub id: Arc<str>,
    pub subject: Subject,
    /// Unix seconds from which the rule captures nothing more.
    pub ends_at: i64,
}

/// The rules in force, as the request path reads them.
#[derive(Debug, Default)]
pub struct ActiveRules(Vec<ActiveRule>);

impl ActiveRules {
    pub fn new(rules: Vec<ActiveRule>) -> ActiveRules {
        ActiveRules(rules)
    }

    /// True when no capture runs: the request path's whole question, most of the time.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The rule that captures a call of `key` (of `tenant`) at `now`: a rule ends by its time
    /// even before the set is next read again.
    pub fn matching(&self, now: i64, key: &str, tenant: Option<&str>) -> Option<&ActiveRule> {
        self.0.iter().find(|rule| {
            now < rule.ends_at
                && match &rule.subject {
                    Subject::Key(id) => id == key,
                    Subject::Tenant(id) => tenant == Some(id.as_str()),
                }
        })
    }
}

/// A capture's length as operators write it: `90s`, `30m`, `1h`, `2d` (a bare number is
/// seconds). Returns seconds.
pub fn parse_duration(field: &'static str, text: &str) -> Result<u64, Invalid> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return invalid(field, "must be a number with s, m, h or d (e.g. 30m, 1h)"),
    };
    match number.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n.saturating_mul(unit_secs)),
        _ => invalid(
            field,
            "must be a positive number with s, m, h or d (e.g. 30m, 1h)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(subject: Subject, ends_at: i64) -> ActiveRule {
        ActiveRule {
            id: Arc::from("cap-1"),
            subject,
            ends_at,
        }
    }

    #[test]
    fn a_rule_matches_its_key_or_its_tenant_only() {
        let rules = ActiveRules::new(vec![
            rule(Subject::Key("k1".into()), 100),
            rule(Subject::Tenant("t1".into()), 100),
        ]);
        assert!(rules.matching(10, "k1", None).is_some());
        assert!(rules.matching(10, "k2", Some("t1")).is_some());
        assert!(rules.matching(10, "k2", Some("t2")).is_none());
        assert!(rules.matching(10, "k2", None).is_none());
    }

    #[test]
    fn a_rule_ends_at_its_end_time() {
        let rules = ActiveRules::new(vec![rule(Subject::Key("k1".into()), 100)]);
        assert!(rules.matching(99, "k1", None).is_some());
        assert!(rules.matching(100, "k1", None).is_none());
    }

    #[test]
    fn durations_read_with_their_unit() {
        assert_eq!(parse_duration("for", "90s"), Ok(90));
        assert_eq!(parse_duration("for", "30m"), Ok(1800));
        assert_eq!(parse_duration("for", "1h"), Ok(3600));
        assert_eq!(parse_duration("for", "2d"), Ok(172_800));
        assert_eq!(parse_duration("for", "45"), Ok(45));
        for bad in ["", "0h", "1w", "h", "-1h", "1.5h"] {
            assert!(parse_duration("for", bad).is_err(), "{bad}");
        }
    }
}
