//! Token usage as clients need it. Strict OpenAI SDK validation requires every field below on a
//! Response's `usage`; the upstream may leave some out (e.g. `cache_write_tokens`), so the relay
//! completes usage objects in place — adding missing integers, keeping everything else.

use serde_json::{Map, Value};

/// Makes `usage` complete; returns true when something had to be added. `null` or a non-object
/// becomes a complete all-zero usage.
pub fn complete(usage: &mut Value) -> bool {
    if !usage.is_object() {
        *usage = Value::Object(Map::new());
    }
    let Value::Object(map) = usage else {
        return false;
    };
    let mut changed = false;
    for key in ["input_tokens", "output_tokens"] {
        changed |= ensure_int(map, key, 0);
    }
    // Counts are the upstream's: two near u64::MAX must not overflow the sum.
    let total = int(map, "input_tokens").saturating_add(int(map, "output_tokens"));
    changed |= ensure_int(map, "total_tokens", total);
    let input = ensure_object(map, "input_tokens_details", &mut changed);
    changed |= ensure_int(input, "cached_tokens", 0);
    changed |= ensure_int(input, "cache_write_tokens", 0);
    let output = ensure_object(map, "output_tokens_details", &mut changed);
    changed |= ensure_int(output, "reasoning_tokens", 0);
    changed
}

fn int(map: &Map<String, Value>, key: &str) -> u64 {
    map.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn ensure_int(map: &mut Map<String, Value>, key: &str, default: u64) -> bool {
    if map.get(key).is_some_and(Value::is_u64) {
        return false;
    }
    map.insert(key.to_owned(), Value::from(default));
    true
}

fn ensure_object<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
    changed: &mut bool,
) -> &'a mut Map<String, Value> {
    if !map.get(key).is_some_and(Value::is_object) {
        map.insert(key.to_owned(), Value::Object(Map::new()));
        *changed = true;
    }
    match map.get_mut(key) {
        Some(Value::Object(inner)) => inner,
        _ => unreachable!("inserted above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_fields_are_added_and_others_kept() {
        let mut usage = json!({"input_tokens": 3, "input_tokens_details": {"cached_tokens": 1},
                               "output_tokens": 2, "extra": "kept"});
        assert!(complete(&mut usage));
        assert_eq!(
            usage,
            json!({"input_tokens": 3, "input_tokens_details": {"cached_tokens": 1, "cache_write_tokens": 0},
                   "output_tokens": 2, "extra": "kept", "total_tokens": 5,
                   "output_tokens_details": {"reasoning_tokens": 0}})
        );
        assert!(!complete(&mut usage), "a complete usage is left alone");
    }

    #[test]
    fn a_total_past_u64_is_the_largest_count() {
        let mut usage = json!({"input_tokens": u64::MAX, "output_tokens": 1});
        assert!(complete(&mut usage));
        assert_eq!(usage["total_tokens"], u64::MAX);
    }

    #[test]
    fn null_usage_becomes_a_complete_zero_usage() {
        let mut usage = Value::Null;
        assert!(complete(&mut usage));
        assert_eq!(usage["input_tokens_details"]["cache_write_tokens"], 0);
        assert_eq!(usage["total_tokens"], 0);
    }
}
