//! The checks that need the network: the upstream (`upstream`) and the OAuth issuer
//! (`oauth_issuer`) resolve and answer over TLS with the relay's own trust (`upstream.ca_file`
//! honoured, through `upstream::outbound`), and this machine's clock agrees with the upstream's
//! `Date` (`clock`). One unauthenticated GET each, with short timeouts: any HTTP answer proves the
//! way there.

use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use url::Url;

use super::Finding;
use crate::settings::Settings;
use crate::upstream::outbound::Outbound;

/// Time to resolve a name, and to connect (TLS handshake included).
const CONNECT: Duration = Duration::from_secs(5);
/// Time for the whole answer's head.
const ANSWER: Duration = Duration::from_secs(10);
/// A clock further than this from the upstream's warns.
const SKEW_WARN_SECS: i64 = 30;

/// An endpoint that answered: its status, its `Date`, and this machine's time halfway through.
struct Answered {
    status: u16,
    date: Option<DateTime<Utc>>,
    midpoint: DateTime<Utc>,
}

/// Why an endpoint did not answer.
enum Unreached {
    Resolve(String),
    Tls(String),
    Connect(String),
}

pub(super) fn checks(settings: &Settings) -> Vec<Finding> {
    let outbound = match Outbound::for_upstream(&settings.upstream) {
        Ok(outbound) => outbound,
        Err(e) => {
            let hint = "name a readable PEM file of CA certificates, or unset it";
            return vec![Finding::fail("upstream", e.to_string(), hint)];
        }
    };
    let base = settings.upstream.base_url.as_str().trim_end_matches('/');
    let upstream_url = format!("{base}/models");
    let issuer_url = settings.oauth.endpoint(".well-known/openid-configuration");
    let system = actix_web::rt::System::new();
    let (upstream, issuer) = system.block_on(async {
        futures_util::future::join(get(&outbound, &upstream_url), get(&outbound, &issuer_url)).await
    });
    let skew_limit = i64::try_from(settings.oauth.refresh_skew_secs).unwrap_or(i64::MAX);
    let clock = clock(&upstream, skew_limit);
    vec![
        reach(
            "upstream",
            "upstream.base_url",
            &settings.upstream.base_url,
            upstream,
        ),
        reach(
            "oauth_issuer",
            "oauth.issuer",
            &settings.oauth.issuer,
            issuer,
        ),
        clock,
    ]
}

async fn get(outbound: &Outbound, url: &str) -> Result<Answered, Unreached> {
    let parsed = Url::parse(url).map_err(|e| Unreached::Resolve(e.to_string()))?;
    resolve(&parsed).await?;
    let client = outbound.client(CONNECT, ANSWER);
    let started = (Instant::now(), Utc::now());
    let response = client
        .get(url)
        .insert_header(("user-agent", "codex-relay doctor"))
        .send()
        .await
        .map_err(|e| classify(&e.to_string()))?;
    let half = started.0.elapsed() / 2;
    let midpoint = started.1 + chrono::Duration::from_std(half).unwrap_or_default();
    let date = response
        .headers()
        .get("date")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
        .map(|d| d.with_timezone(&Utc));
    Ok(Answered {
        status: response.status().as_u16(),
        date,
        midpoint,
    })
}

/// The URL's host resolved, off the runtime's thread (the system resolver blocks), in time.
async fn resolve(url: &Url) -> Result<(), Unreached> {
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let shown = host.clone();
    let lookup = actix_web::rt::task::spawn_blocking(move || {
        (host.as_str(), port)
            .to_socket_addrs()
            .map(|mut a| a.next().is_some())
    });
    match actix_web::rt::time::timeout(CONNECT, lookup).await {
        Ok(Ok(Ok(true))) => Ok(()),
        Ok(Ok(Ok(false))) => Err(Unreached::Resolve(format!("{shown} has no address"))),
        Ok(Ok(Err(e))) => Err(Unreached::Resolve(format!("{shown}: {e}"))),
        Ok(Err(e)) => Err(Unreached::Resolve(e.to_string())),
        Err(_) => Err(Unreached::Resolve(format!(
            "{shown}: no answer within {}s",
            CONNECT.as_secs()
        ))),
    }
}

/// A failed request said in the operator's terms: its certificate, or the way there.
fn classify(error: &str) -> Unreached {
    let lower = error.to_lowercase();
    if ["certificate", "tls", "handshake", "alert"]
        .iter()
        .any(|w| lower.contains(w))
    {
        Unreached::Tls(error.to_owned())
    } else {
        Unreached::Connect(error.to_owned())
    }
}

fn reach(
    name: &'static str,
    setting: &str,
    url: &Url,
    outcome: Result<Answered, Unreached>,
) -> Finding {
    let answered = match outcome {
        Ok(answered) => answered,
        Err(Unreached::Resolve(e)) => {
            return Finding::fail(
                name,
                format!("{url} does not resolve: {e}"),
                format!("check `{setting}` and this machine's DNS"),
            )
        }
        Err(Unreached::Tls(e)) => {
            return Finding::fail(
                name,
                format!("{url}: the TLS handshake failed: {e}"),
                "a TLS-inspecting proxy or a private endpoint needs its CA named in \
                 `upstream.ca_file`; check the machine's clock too",
            )
        }
        Err(Unreached::Connect(e)) => {
            return Finding::fail(
                name,
                format!("{url} cannot be reached: {e}"),
                format!(
                    "check `{setting}`, the firewall and any proxy between this machine and it"
                ),
            )
        }
    };
    let status = answered.status;
    match url.scheme() {
        "https" => Finding::ok(name, format!("{url} answers over TLS (HTTP {status})")),
        _ if is_loopback(url) => Finding::ok(
            name,
            format!("{url} answers (HTTP {status}; plain HTTP, on this machine)"),
        ),
        _ => Finding::warn(
            name,
            format!("{url} answers over plain HTTP (HTTP {status}): tokens cross the network unencrypted"),
            format!("use an https:// URL in `{setting}`"),
        ),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

/// This machine's clock against the upstream's `Date`: token expiry is judged by it. Past
/// `fail_secs` (the refresh skew) a token can expire before the relay thinks it should refresh.
fn clock(upstream: &Result<Answered, Unreached>, fail_secs: i64) -> Finding {
    let Ok(answered) = upstream else {
        return Finding::warn(
            "clock",
            "not compared: the upstream did not answer",
            "fix the upstream check first",
        );
    };
    let Some(date) = answered.date else {
        return Finding::warn(
            "clock",
            "not compared: the upstream's answer has no Date header",
            "compare this machine's clock with a time server (`timedatectl`, `chronyc tracking`)",
        );
    };
    skew_finding((answered.midpoint - date).num_seconds(), fail_secs)
}

/// `skew`: this machine's clock minus the upstream's, in seconds.
fn skew_finding(skew: i64, fail_secs: i64) -> Finding {
    let direction = if skew >= 0 { "ahead of" } else { "behind" };
    let message = format!(
        "this machine's clock is {}s {direction} the upstream's",
        skew.abs()
    );
    let hint = "token expiry is judged by this clock: off by this much, tokens are refreshed too \
                late (calls fail with 401 until a refresh) or too early; keep it synchronised \
                (NTP: `timedatectl set-ntp true`, chrony)";
    match skew.abs() {
        s if s > fail_secs => Finding::fail("clock", message, hint),
        s if s > SKEW_WARN_SECS => Finding::warn("clock", message, hint),
        _ => Finding::ok(
            "clock",
            format!("{message} (at most {SKEW_WARN_SECS}s is fine)"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    #[test]
    fn a_clock_off_by_more_than_half_a_minute_warns_and_past_the_refresh_skew_fails() {
        assert_eq!(skew_finding(2, 300).status, Status::Ok);
        let warned = skew_finding(-45, 300);
        assert_eq!(warned.status, Status::Warn);
        assert!(warned.message.contains("45s behind"), "{}", warned.message);
        assert!(warned.hint.unwrap().contains("token expiry"));
        assert_eq!(skew_finding(301, 300).status, Status::Fail);
    }

    #[test]
    fn a_refused_certificate_is_told_apart_from_a_closed_port() {
        assert!(matches!(
            classify("invalid peer certificate: UnknownIssuer"),
            Unreached::Tls(_)
        ));
        assert!(matches!(
            classify("Connection refused (os error 111)"),
            Unreached::Connect(_)
        ));
    }
}
