//! What only the running relay knows (`relay`): whether an account serves with rotated tokens its
//! store could not take yet (`tokens_unsaved` — stopping the relay then loses that login). Asked
//! of the admin plane (`GET /admin/v1/accounts`, any scope) when an admin token is given in
//! `CODEX_RELAY_ADMIN_TOKEN` or the file `CODEX_RELAY_ADMIN_TOKEN_FILE` names; left out otherwise.
//! The token goes only into the request's header.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::Finding;
use crate::settings::Settings;
use crate::upstream::outbound::Outbound;

/// Environment variable holding an admin token for this check (any scope).
pub const ADMIN_TOKEN_ENV: &str = "CODEX_RELAY_ADMIN_TOKEN";
/// Environment variable naming a file that holds it.
pub const ADMIN_TOKEN_FILE_ENV: &str = "CODEX_RELAY_ADMIN_TOKEN_FILE";

const TIMEOUT: Duration = Duration::from_secs(5);

/// The `relay` finding, when an admin token is given.
pub(super) fn check(settings: &Settings) -> Option<Finding> {
    let token = match admin_token()? {
        Ok(token) => token,
        Err(problem) => {
            let hint = format!("make {ADMIN_TOKEN_FILE_ENV} name a readable file");
            return Some(Finding::warn("relay", problem, hint));
        }
    };
    let url = format!(
        "http://{}/admin/v1/accounts",
        reachable(settings.admin.listen)
    );
    let asked = actix_web::rt::System::new().block_on(accounts(&url, &token));
    Some(match asked {
        Ok(accounts) => unsaved(&accounts),
        Err(problem) => Finding::warn(
            "relay",
            format!("the running relay was not asked: {problem}"),
            "start it (`codex-relay serve`), or check admin.listen and the admin token",
        ),
    })
}

/// The token from the environment: `None` when none is given.
fn admin_token() -> Option<Result<SecretString, String>> {
    if let Ok(token) = std::env::var(ADMIN_TOKEN_ENV) {
        return Some(Ok(SecretString::from(token.trim().to_owned())));
    }
    let path = std::env::var_os(ADMIN_TOKEN_FILE_ENV)?;
    let read = std::fs::read_to_string(&path).map_err(|e| {
        let path = std::path::Path::new(&path).display().to_string();
        format!("{ADMIN_TOKEN_FILE_ENV} names {path}, which cannot be read: {e}")
    });
    Some(read.map(|token| SecretString::from(token.trim().to_owned())))
}

/// A listener bound to every address is reached on loopback.
fn reachable(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

async fn accounts(url: &str, token: &SecretString) -> Result<Vec<Value>, String> {
    let client = Outbound::default().client(TIMEOUT, TIMEOUT);
    let mut response = client
        .get(url)
        .bearer_auth(token.expose_secret())
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let body: Value = response
        .json()
        .limit(64 << 20)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !response.status().is_success() {
        let said = body["error"]["message"].as_str().unwrap_or_default();
        return Err(format!("{url} answered {}: {said}", response.status()));
    }
    Ok(body["data"].as_array().cloned().unwrap_or_default())
}

fn unsaved(accounts: &[Value]) -> Finding {
    let unsaved: Vec<String> = accounts
        .iter()
        .filter(|a| a["tokens_unsaved"] == true)
        .map(|a| format!("{} ({})", text(&a["id"]), text(&a["label"])))
        .collect();
    if unsaved.is_empty() {
        return Finding::ok(
            "relay",
            format!(
                "the running relay answers; none of its {} account(s) holds unsaved tokens",
                accounts.len()
            ),
        );
    }
    Finding::fail(
        "relay",
        format!(
            "serving with rotated tokens the store could not take: {}",
            unsaved.join(", ")
        ),
        "keep the relay running and make the store writable (free disk, fix its permissions) \
         until the log says `rotated tokens stored`: stopped now, these logins are lost",
    )
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}
