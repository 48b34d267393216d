//! How deep a JSON text nests its arrays and objects, found without parsing it. The relay reads a
//! request's fields as raw JSON, which serde_json skips at any depth, so it forwards bodies deeper
//! than its own parsers read (serde_json reads 127 levels). Once an account has failed such a body
//! in a way the breaker would count, the relay refuses it itself instead of trying another account
//! (`http/failover.rs`).
//!
//! One pass: the text inside strings is skipped with `memchr` to the next quote (an escaped quote
//! is told by the backslashes before it); only the bytes between strings are looked at. Still
//! about a third of the cost of parsing the body, which is why it runs only after a failure.

use memchr::memchr;

/// The deepest nesting the relay's own parsers read: serde_json's recursion limit of 128 stops
/// at the 128th level.
pub const MAX_DEPTH: usize = 127;

/// Whether `json` nests arrays and objects more than `limit` levels deep. Brackets inside strings
/// do not count. The text need not be valid JSON; its structure is read as far as it goes.
pub fn deeper_than(json: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut at = 0;
    while at < json.len() {
        let quote = memchr(b'"', &json[at..]).map_or(json.len(), |i| at + i);
        for &byte in &json[at..quote] {
            match byte {
                b'[' | b'{' => {
                    depth += 1;
                    if depth > limit {
                        return true;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        at = after_string(json, quote + 1);
    }
    false
}

/// Where the string whose first character is at `from` ends (just past its closing quote).
fn after_string(json: &[u8], mut from: usize) -> usize {
    while let Some(i) = json.get(from..).and_then(|rest| memchr(b'"', rest)) {
        let quote = from + i;
        let backslashes = json[..quote]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        // An odd number of backslashes escapes the quote: the string goes on.
        if backslashes % 2 == 0 {
            return quote + 1;
        }
        from = quote + 1;
    }
    json.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn depth_counts_arrays_and_objects_but_not_brackets_in_strings() {
        assert!(!deeper_than(b"{}", 1));
        assert!(deeper_than(b"{\"a\":[]}", 1));
        assert!(!deeper_than(b"{\"a\":[],\"b\":{}}", 2));
        assert!(!deeper_than(br#"{"a":"[[[{{{","b":"\"[[[","c":"\\"}"#, 1));
        assert!(deeper_than(br#"{"a":"\\","b":[[]]}"#, 2));
        assert!(!deeper_than(nested(MAX_DEPTH).as_bytes(), MAX_DEPTH));
        assert!(deeper_than(nested(MAX_DEPTH + 1).as_bytes(), MAX_DEPTH));
    }

    #[test]
    fn the_relay_refuses_no_less_than_its_own_parser_reads() {
        for depth in [MAX_DEPTH, MAX_DEPTH + 1] {
            let text = nested(depth);
            let parses = serde_json::from_str::<serde_json::Value>(&text).is_ok();
            assert_eq!(parses, !deeper_than(text.as_bytes(), MAX_DEPTH), "{depth}");
        }
    }

    #[test]
    fn broken_text_ends_the_scan_without_a_panic() {
        for text in [&b"\"unterminated"[..], b"[\"\\", b"]]]}", b"\\", b"[\""] {
            assert!(!deeper_than(text, 1), "{text:?}");
        }
        assert!(deeper_than(b"[[[\"", 2));
    }
}
