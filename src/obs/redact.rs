//! Redaction of text that comes from outside — an OAuth issuer's or the upstream's error text —
//! before it reaches a log line, an error body, the admin view or the store. The whole message is
//! matched against the shapes credentials take (not word by word: a token glued to a key, a quote
//! or a URL is found too), and the result is bounded to [`REDACTED_LIMIT`] characters.
//!
//! Redacted: JWTs (`eyJ…`, whole or cut), prefixed keys (`rt_…`, `sk-…`, `sess-…`), `Bearer …` and
//! `Basic …` credentials, the values of credential keys (`access_token`, `refresh_token`,
//! `id_token`, `code`, …) in JSON, forms, query strings and `key: value` text, and long runs of
//! base64 or hex. Kept: ordinary words, error codes (`refresh_token_reused`), identifiers
//! (snake_case, UUIDs, OpenAI object ids such as `resp_…`) and masked e-mails (`j***@example.com`).

use std::sync::LazyLock;

use regex_lite::{Captures, Regex};

/// The longest text kept, in characters; a longer one is cut and ends with `…`.
pub const REDACTED_LIMIT: usize = 300;

const REDACTED: &str = "[redacted]";

/// Keys whose values are credentials, wherever they appear as `key=value`, `"key": "value"` or
/// `key: value`.
const CREDENTIAL_KEYS: &str =
    "access_token|refresh_token|id_token|code_verifier|client_secret|api_key|session_token|password";

/// Object ids that name something and open nothing (the Responses API's own ids).
const OBJECT_ID_PREFIXES: [&str; 8] = [
    "resp_", "msg_", "rs_", "fc_", "call_", "req_", "conv_", "ws_",
];

/// Replaces every credential-shaped part of `text` with `[redacted]` and bounds the result to
/// [`REDACTED_LIMIT`] characters. Use it on any text a third party wrote before it is logged,
/// shown or stored.
pub fn redact_secrets(text: &str) -> String {
    match &*PATTERNS {
        Some(patterns) => bounded(patterns.redact(text)),
        // The patterns are fixed and tested; were one ever to fail to build, show nothing.
        None => REDACTED.to_owned(),
    }
}

static PATTERNS: LazyLock<Option<Patterns>> = LazyLock::new(|| Patterns::compile().ok());

/// The credential shapes, applied in order: keyed values first (so `access_token=eyJ…` keeps
/// its key), then the shapes a bare token has.
struct Patterns {
    json_value: Regex,
    keyed_value: Regex,
    scheme: Regex,
    jwt: Regex,
    prefixed_key: Regex,
    long_run: Regex,
}

impl Patterns {
    fn compile() -> Result<Patterns, regex_lite::Error> {
        Ok(Patterns {
            // `"access_token": "…"`, also inside an escaped JSON string; `"code"` as well (an
            // authorization code), whose error codes survive as plain words.
            json_value: Regex::new(&format!(
                r#"(?i)(\\?"(?:{CREDENTIAL_KEYS}|code)\\?"\s*:\s*\\?")([^"\\]*)"#
            ))?,
            // `access_token=…` (forms, query strings), `code=…`, `refresh_token: …`.
            keyed_value: Regex::new(&format!(
                r#"(?i)\b((?:(?:{CREDENTIAL_KEYS})\s*[:=]|code\s*=)\s*)([^\s"'&,;<>()\[\]{{}}]+)"#
            ))?,
            scheme: Regex::new(r"(?i)\b((?:bearer|basic)\s+)([A-Za-z0-9._~+/=-]+)")?,
            jwt: Regex::new(r"eyJ[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*){0,2}")?,
            prefixed_key: Regex::new(r"\b(?:rt|sk|sess)[-_][A-Za-z0-9_-]{8,}")?,
            long_run: Regex::new(r"[A-Za-z0-9+/_-]{32,}={0,2}")?,
        })
    }

    fn redact(&self, text: &str) -> String {
        let keep_plain = |caps: &Captures| {
            let value = &caps[2];
            let shown = if is_plain_word(value) {
                value
            } else {
                REDACTED
            };
            format!("{}{shown}", &caps[1])
        };
        let text = self.json_value.replace_all(text, keep_plain);
        let text = self.keyed_value.replace_all(&text, keep_plain);
        let text = self.scheme.replace_all(&text, |caps: &Captures| {
            let value = &caps[2];
            let word = value.len() < 20 && value.chars().all(|c| c.is_ascii_alphabetic());
            format!("{}{}", &caps[1], if word { value } else { REDACTED })
        });
        let text = self.prefixed_key.replace_all(&text, REDACTED);
        let text = self.jwt.replace_all(&text, REDACTED);
        let text = self.long_run.replace_all(&text, |caps: &Captures| {
            let run = &caps[0];
            if looks_random(run) {
                REDACTED.to_owned()
            } else {
                run.to_owned()
            }
        });
        text.into_owned()
    }
}

/// An error code or a placeholder (`refresh_token_reused`, `null`, `expired`): lower-case
/// letters, `_` and `.`. No credential looks like this.
fn is_plain_word(value: &str) -> bool {
    value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || matches!(c, '_' | '.'))
}

/// Whether a long run of base64/hex characters is a secret rather than an identifier: mixed case
/// with digits (base64), or a separator-free stretch of 24 or more letters and digits with both
/// (hex, base32). Object ids (`resp_…`) are kept.
fn looks_random(run: &str) -> bool {
    if OBJECT_ID_PREFIXES.iter().any(|p| run.starts_with(p)) {
        return false;
    }
    let has = |test: fn(&char) -> bool| run.chars().any(|c| test(&c));
    let base64 =
        has(char::is_ascii_uppercase) && has(char::is_ascii_lowercase) && has(char::is_ascii_digit);
    let dense_stretch = run.split(['-', '_', '/', '+', '=']).any(|part| {
        part.len() >= 24
            && part.chars().any(|c| c.is_ascii_digit())
            && part.chars().any(|c| c.is_ascii_alphabetic())
    });
    base64 || dense_stretch
}

/// `text` cut to [`REDACTED_LIMIT`] characters, with `…` when something was cut.
fn bounded(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(REDACTED_LIMIT) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str =
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1c2VyLTEiLCJleHAiOjE5MDB9.sig";
    const REFRESH: &str = "rt_eyJhIjoiYWNjdC0xIn0_0123456789abcdef0123456789abcdef";

    #[test]
    fn the_patterns_compile() {
        assert!(Patterns::compile().is_ok());
    }

    #[test]
    fn jwts_are_redacted_whole_glued_or_cut() {
        for text in [
            format!("bad token {JWT}"),
            format!("bad token ({JWT})"),
            format!("bad token={JWT}&x=1"),
            format!("bad token \"{JWT}\""),
            format!("bad token {}", &JWT[..30]),
        ] {
            let redacted = redact_secrets(&text);
            assert!(!redacted.contains("eyJ"), "{redacted}");
            assert!(redacted.contains("[redacted]"), "{redacted}");
        }
    }

    #[test]
    fn prefixed_keys_are_redacted() {
        let text =
            format!("token {REFRESH} and key sk-relay-abcdefghijklmnop, sess-ABCDEFGH12345678.");
        assert_eq!(
            redact_secrets(&text),
            "token [redacted] and key [redacted], [redacted]."
        );
    }

    #[test]
    fn authorization_credentials_are_redacted_and_the_scheme_kept() {
        assert_eq!(
            redact_secrets("Authorization: Bearer abc.DEF-123_456~xyz was refused"),
            "Authorization: Bearer [redacted] was refused"
        );
        assert_eq!(
            redact_secrets("Basic dXNlcjpwYXNzd29yZA== is not accepted"),
            "Basic [redacted] is not accepted"
        );
        assert_eq!(
            redact_secrets("a Bearer token is required"),
            "a Bearer token is required"
        );
    }

    #[test]
    fn credential_values_are_redacted_in_json_forms_and_urls() {
        let cases = [
            (
                r#"{"access_token":"at-1234","refresh_token": "x9"}"#,
                r#"{"access_token":"[redacted]","refresh_token": "[redacted]"}"#,
            ),
            (
                r#"body was {\"id_token\":\"abc123\"}"#,
                r#"body was {\"id_token\":\"[redacted]\"}"#,
            ),
            (
                "https://x.test/cb?code=ac_Zx81&state=ok&code_verifier=v3rifier",
                "https://x.test/cb?code=[redacted]&state=ok&code_verifier=[redacted]",
            ),
            (
                "grant_type=refresh_token&refresh_token=abc%2F123&client_id=app_1",
                "grant_type=refresh_token&refresh_token=[redacted]&client_id=app_1",
            ),
            (
                "refresh_token: Zq81 was used",
                "refresh_token: [redacted] was used",
            ),
            (r#"{"code":"A1b2C3"}"#, r#"{"code":"[redacted]"}"#),
        ];
        for (text, expected) in cases {
            assert_eq!(redact_secrets(text), expected, "{text}");
        }
    }

    #[test]
    fn long_base64_and_hex_runs_are_redacted() {
        let base64 = "QmFzZTY0IGVuY29kZWQgc2VjcmV0IHZhbHVlIGhlcmU";
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let text = format!("key {base64} digest {hex}.");
        assert_eq!(redact_secrets(&text), "key [redacted] digest [redacted].");
    }

    #[test]
    fn ordinary_text_codes_ids_and_masked_emails_survive() {
        for text in [
            "Unsupported parameter: max_output_tokens",
            r#"{"error":{"code":"refresh_token_reused","message":"already used"}}"#,
            "error code: refresh_token_invalidated (status code 401)",
            "the refresh_token is null; refresh_token=expired",
            "account 123e4567-e89b-12d3-a456-426614174000 of j***@example.com",
            "Previous response with id 'resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b' not found.",
            "model gpt-5.1-codex-max_2025_11_13_preview_release_candidate is unknown",
            "see https://platform.openai.com/docs/guides/error-codes/api-errors for details",
        ] {
            assert_eq!(redact_secrets(text), text);
        }
    }

    #[test]
    fn long_text_is_bounded_with_an_ellipsis() {
        let long = "word ".repeat(200);
        let redacted = redact_secrets(&long);
        assert_eq!(redacted.chars().count(), REDACTED_LIMIT + 1);
        assert!(redacted.ends_with('…'));
        let exact = "é".repeat(REDACTED_LIMIT);
        assert_eq!(
            redact_secrets(&exact),
            exact,
            "counted in characters, not bytes"
        );
        // Redacted first, then cut: a token across the limit leaves no fragment behind.
        let across = format!("{}{JWT}", "x ".repeat(140));
        assert!(!redact_secrets(&across).contains("eyJ"));
    }
}
