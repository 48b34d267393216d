//! The health probe: `GET {upstream}/models` with the account's credentials — cheap, and it
//! answers only when the backend accepts the account. A 2xx closes a half-open breaker; a 5xx,
//! timeout or connect error reopens it.

use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use relay_actors::{HealthProber, ProbeResult, ProbeTarget};
use secrecy::ExposeSecret;

use crate::settings::UpstreamSettings;
use crate::upstream::outbound::Outbound;

pub struct ModelsProbe {
    url: String,
    connect_timeout: Duration,
    timeout: Duration,
    user_agent: String,
    originator: String,
    outbound: Outbound,
}

impl ModelsProbe {
    pub fn new(settings: &UpstreamSettings, outbound: &Outbound) -> ModelsProbe {
        let base = settings.base_url.as_str().trim_end_matches('/');
        ModelsProbe {
            url: format!(
                "{base}/models?client_version={}",
                client_version(&settings.user_agent)
            ),
            connect_timeout: Duration::from_secs(settings.connect_timeout_secs),
            timeout: Duration::from_secs(settings.response_timeout_secs),
            user_agent: settings.user_agent.clone(),
            originator: settings.originator.clone(),
            outbound: outbound.clone(),
        }
    }
}

/// The Codex client version the relay presents itself as (`codex_cli_rs/0.125.0 (…)` → `0.125.0`):
/// the catalog endpoint wants one.
fn client_version(user_agent: &str) -> &str {
    user_agent
        .split_once('/')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .filter(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.') && !v.is_empty())
        .unwrap_or("0.125.0")
}

impl HealthProber for ModelsProbe {
    fn probe(&self, target: ProbeTarget) -> LocalBoxFuture<'static, ProbeResult> {
        let client = self.outbound.client(self.connect_timeout, self.timeout);
        let mut request = client
            .get(&self.url)
            .insert_header((
                "authorization",
                format!("Bearer {}", target.access_token.expose_secret()),
            ))
            .insert_header(("chatgpt-account-id", target.chatgpt_account_id.as_str()))
            .insert_header(("originator", self.originator.as_str()))
            .insert_header(("user-agent", self.user_agent.as_str()));
        if target.is_fedramp {
            request = request.insert_header(("x-openai-fedramp", "true"));
        }
        Box::pin(async move {
            match request.send().await {
                Ok(response) => ProbeResult::Status(response.status().as_u16()),
                Err(awc::error::SendRequestError::Timeout) => ProbeResult::TimedOut,
                Err(_) => ProbeResult::TransportFailed,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_client_version_comes_from_the_user_agent() {
        assert_eq!(
            super::client_version("codex_cli_rs/0.130.1 (relay)"),
            "0.130.1"
        );
        assert_eq!(super::client_version("something else"), "0.125.0");
    }
}
