//! Observability: JSON logs and the masking rules that keep secrets and personal data out of them
//! (`redact.rs`: credential-shaped text from issuers and the upstream).
//!
//! Never logged, anywhere: request or response bodies, prompts, outputs, access/refresh/id tokens,
//! API keys, Authorization headers, cookies. Emails only masked, accounts only by the relay's id,
//! what a client sends (path, model) only bounded and with its control characters escaped.

mod bounded;
mod logging;
pub mod metrics;
mod redact;

pub use bounded::{bounded, bounded_string, limit};
pub use logging::{build_logger, build_switched_logger, LogGuard, LogLevelSwitch, LogSink};
pub use redact::{redact_secrets, REDACTED_LIMIT};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_masked() {
        assert_eq!(mask_email("jane.doe@example.com"), "j***@example.com");
        assert_eq!(mask_email("nonsense"), "***");
    }
}
