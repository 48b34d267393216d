//! Text a client (or the upstream) controls, made fit for a log line or an error message: at most
//! a stated length, cut with a marker saying how much was left out, and with control characters
//! (and the Unicode controls that reorder text on a terminal) written as escapes. A 60 KB path
//! sent with no key must not make a 60 KB log line, nor an escape sequence reach an operator's
//! terminal.

use std::borrow::Cow;
use std::fmt::Write;

use crate::bounds::is_unsafe;

/// The longest each client-controlled field is kept, in bytes (before the marker).
pub mod limit {
    /// A request path: the relay's longest is under 80 bytes.
    pub const PATH: usize = 256;
    /// An HTTP method: standard ones are at most 7 bytes.
    pub const METHOD: usize = 16;
    /// A model name as the client sent it.
    pub const MODEL: usize = 128;
    /// An id or code the upstream sent (request id, error code).
    pub const UPSTREAM_TEXT: usize = 128;
}

/// `text` as it may be logged or echoed: borrowed when it is short and plain (the common case
/// allocates nothing), else at most `limit` bytes of it with control characters escaped (`\x1b`,
/// `\u{202e}`), followed by `…[+N bytes]` when `N` bytes were left out.
pub fn bounded(text: &str, limit: usize) -> Cow<'_, str> {
    if text.len() <= limit && !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(limit.min(text.len()) + 24);
    for (at, c) in text.char_indices() {
        let before = out.len();
        if is_unsafe(c) {
            let _ = write!(out, "{}", c.escape_unicode());
        } else {
            out.push(c);
        }
        if out.len() > limit {
            out.truncate(before);
            let _ = write!(out, "…[+{} bytes]", text.len() - at);
            break;
        }
    }
    Cow::Owned(out)
}

/// [`bounded`] for a text the caller owns: the same string back when nothing needs changing.
pub fn bounded_string(text: String, limit: usize) -> String {
    let changed = match bounded(&text, limit) {
        Cow::Owned(changed) => Some(changed),
        Cow::Borrowed(_) => None,
    };
    changed.unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_plain_text_is_borrowed_as_it_is() {
        assert!(matches!(
            bounded("/v1/responses", 256),
            Cow::Borrowed("/v1/responses")
        ));
        assert!(matches!(bounded("gpt-5.5 ünïcode", 128), Cow::Borrowed(_)));
    }

    #[test]
    fn an_owned_text_comes_back_itself_unless_it_changes() {
        let model = String::from("gpt-5.5");
        let at = model.as_ptr();
        let same = bounded_string(model, 128);
        assert_eq!(same.as_ptr(), at);
        assert_eq!(bounded_string("a\nb".to_owned(), 128), "a\\u{a}b");
    }

    #[test]
    fn long_text_is_cut_at_the_limit_with_a_marker() {
        let path = format!("/v1/{}", "a".repeat(60_000));
        let cut = bounded(&path, limit::PATH);
        assert!(cut.len() <= limit::PATH + 24, "{}", cut.len());
        assert!(cut.starts_with("/v1/aaa"));
        assert!(cut.ends_with(&format!("…[+{} bytes]", path.len() - limit::PATH)));
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let text = "é".repeat(100);
        let cut = bounded(&text, 11);
        assert!(cut.starts_with("ééééé…"), "{cut}");
        assert!(cut.ends_with("[+190 bytes]"), "{cut}");
    }

    #[test]
    fn control_characters_are_escaped_and_count_towards_the_limit() {
        assert_eq!(
            bounded("a\nb\u{1b}[31mc\u{202e}d", 64),
            "a\\u{a}b\\u{1b}[31mc\\u{202e}d"
        );
        let bells = "\u{7}".repeat(100);
        let cut = bounded(&bells, 20);
        assert!(cut.starts_with("\\u{7}\\u{7}\\u{7}\\u{7}…"), "{cut}");
        assert!(!cut.chars().any(is_unsafe));
    }
}
