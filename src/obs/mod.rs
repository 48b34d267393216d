//! Observability: JSON logs and the masking rules that keep secrets and personal data out of them.
//!
//! Never logged, anywhere: request or response bodies, prompts, outputs, access/refresh/id tokens,
//! API keys, Authorization headers, cookies. Emails only masked, accounts only by the relay's id,
//! what a client sends (path, model) only bounded and with its control characters escaped.

mod bounded;
mod logging;

pub use bounded::{bounded, bounded_string, limit};
pub use logging::{build_logger, LogGuard, LogSink};

/// `jane.doe@example.com` → `j***@example.com`: enough to recognise, not to harvest.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// Replaces anything that looks like a credential inside a text that will be shown to a client
/// or written to a log (e.g. an upstream error message).
pub fn redact_secrets(text: &str) -> String {
    text.split_inclusive(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ','))
        .map(|word| {
            let core =
                word.trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ','));
            if looks_like_secret(core) {
                word.replacen(core, "[redacted]", 1)
            } else {
                word.to_owned()
            }
        })
        .collect()
}

fn looks_like_secret(word: &str) -> bool {
    const PREFIXES: [&str; 5] = ["eyJ", "sk-", "rt_", "Bearer", "sess-"];
    word.len() >= 16 && PREFIXES.iter().any(|p| word.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_masked() {
        assert_eq!(mask_email("jane.doe@example.com"), "j***@example.com");
        assert_eq!(mask_email("nonsense"), "***");
    }

    #[test]
    fn token_like_words_are_redacted() {
        let text =
            "bad token eyJhbGciOiJub25lIn0.eyJ4IjoxfQ.sig, key sk-relay-abcdefghijklmnop here";
        let redacted = redact_secrets(text);
        assert_eq!(redacted, "bad token [redacted], key [redacted] here");
        assert_eq!(
            redact_secrets("Unsupported parameter: max_output_tokens"),
            "Unsupported parameter: max_output_tokens"
        );
    }
}
