//! What the command line prints of text it did not write itself — names, labels, emails, the
//! errors that quote them. A control character is printed escaped, never raw, so a name in the
//! store (written before names were checked, or straight into the file) cannot move the cursor,
//! recolour or rewrite the operator's terminal.

use std::borrow::Cow;
use std::fmt::Write;

use serde::Serialize;

use crate::bounds::is_unsafe;

/// `text` with every character a terminal would act on written as `\u{…}`.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            let _ = write!(shown, "\\u{{{:x}}}", u32::from(c));
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

/// `value` as pretty JSON with no raw control character: JSON escapes those below U+0020
/// itself, and the rest (DEL, the C1 controls, bidirectional overrides) are written as
/// `\uXXXX`, which any JSON reader reads back as the same text.
pub fn printable_json(value: &impl Serialize) -> serde_json::Result<String> {
    let text = serde_json::to_string_pretty(value)?;
    if !text.chars().any(|c| c != '\n' && is_unsafe(c)) {
        return Ok(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c != '\n' && is_unsafe(c) {
            // Only inside strings: JSON's own layout uses no other control character.
            let _ = write!(shown, "\\u{:04x}", u32::from(c));
        } else {
            shown.push(c);
        }
    }
    Ok(shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped_and_json_reads_back_the_same() {
        assert!(matches!(printable("plain é"), Cow::Borrowed("plain é")));
        assert_eq!(printable("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\u{a}");
        assert_eq!(printable("x\u{9b}y\u{202e}"), "x\\u{9b}y\\u{202e}");
        let name = "evil\u{1b}]0;t\u{7}\u{9b}31m\u{202e}\u{7f}";
        let json = printable_json(&serde_json::json!([{ "name": name }])).unwrap();
        assert!(!json.chars().any(|c| c != '\n' && is_unsafe(c)), "{json}");
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back[0]["name"], name);
    }
}
