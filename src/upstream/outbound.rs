//! How the relay's outgoing HTTP clients (upstream, health probes, OAuth issuer) are built.
//! Settings name the CA file; this module reads it, once, where startup (or the `login` command)
//! builds the clients.
//!
//! - **Trust**: the public web roots, plus an operator's own CA (`upstream.ca_file`) — a
//!   TLS-inspecting company proxy, or a private endpoint in front of the Codex backend.
//! - **HTTP/2** is offered over TLS either way: all of a worker's streams to one host then share
//!   a connection, which keeps held streams cheap (about half the memory of HTTP/1.1).
//! - **`TCP_NODELAY`** on every connection: an HTTP/2 request is several small writes (headers,
//!   then data), and with Nagle on, the second waits for the peer's delayed ACK — 40 ms a call.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix_service::ServiceExt;
use actix_tls::connect::{Connection, ConnectorService};
use actix_web::http::Uri;
use actix_web::rt::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::settings::UpstreamSettings;

/// How long the pool keeps an idle connection (awc's default, named for [`super::warmup`]).
pub const CONN_KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long the pool hands out a connection after opening it (awc's default, likewise).
pub const CONN_LIFETIME: Duration = Duration::from_secs(75);

/// The setup of every outgoing client; the default trusts the public web roots only.
#[derive(Clone, Default)]
pub struct Outbound(Option<Arc<ClientConfig>>);

/// `upstream.ca_file` cannot serve: it stops startup, naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting `upstream.ca_file`: {reason}")]
pub struct CaFileError {
    reason: String,
}

impl Outbound {
    /// The setup the upstream settings ask for: `upstream.ca_file` read and trusted besides the
    /// public roots, when set.
    pub fn for_upstream(settings: &UpstreamSettings) -> Result<Outbound, CaFileError> {
        Outbound::load(settings.ca_file.as_deref()).map_err(|reason| CaFileError { reason })
    }

    /// Reads `ca_file` (PEM, one or more certificates) when given; the message of an error names
    /// what is wrong with the file, for the setting's error.
    pub fn load(ca_file: Option<&Path>) -> Result<Outbound, String> {
        let Some(path) = ca_file else {
            return Ok(Outbound(None));
        };
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let certificates = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut added = 0;
        for certificate in certificates {
            let certificate =
                certificate.map_err(|e| format!("{} is not valid PEM: {e}", path.display()))?;
            roots
                .add(certificate)
                .map_err(|e| format!("{} holds an unusable certificate: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("{} holds no PEM certificate", path.display()));
        }
        let mut config = client_config(roots)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Outbound(Some(Arc::new(config))))
    }

    /// An HTTP client trusting what this setup trusts, with the relay's defaults: no default
    /// headers (each call sets its own), no redirects followed, and no cap on connections (streams
    /// are long-lived; the pool must not limit how many run at once).
    pub fn client(&self, connect_timeout: Duration, response_timeout: Duration) -> awc::Client {
        let connector = awc::Connector::new()
            .connector(ConnectorService::default().map(no_delay))
            .timeout(connect_timeout)
            .conn_keep_alive(CONN_KEEP_ALIVE)
            .conn_lifetime(CONN_LIFETIME)
            .limit(0);
        let connector = match &self.0 {
            Some(config) => connector.rustls_0_23(Arc::clone(config)),
            None => connector,
        };
        awc::Client::builder()
            .connector(connector)
            .timeout(response_timeout)
            .no_default_headers()
            .disable_redirects()
            .finish()
    }

    /// A client for upstream WebSockets: one connection each, never pooled, and over TLS offering
    /// only HTTP/1.1, since the upgrade needs it (a connection that chose HTTP/2 cannot carry one).
    pub fn websocket_client(&self, connect_timeout: Duration) -> awc::Client {
        let config = match &self.0 {
            Some(config) => Ok(ClientConfig::clone(config)),
            None => {
                let mut roots = RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                client_config(roots)
            }
        };
        let connector = awc::Connector::new()
            .connector(ConnectorService::default().map(no_delay))
            .timeout(connect_timeout)
            .limit(0);
        // Building a config from the public roots cannot fail with the ring provider; were it to,
        // awc's own TLS setup would still serve.
        let connector = match config {
            Ok(mut config) => {
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                connector.rustls_0_23(Arc::new(config))
            }
            Err(_) => connector,
        };
        awc::Client::builder()
            .connector(connector)
            .timeout(connect_timeout)
            .no_default_headers()
            .disable_redirects()
            .finish()
    }

    /// Whether an operator's CA is trusted besides the public roots.
    pub fn has_extra_ca(&self) -> bool {
        self.0.is_some()
    }
}

/// A TLS client trusting `roots`, with the ring provider and the default protocol versions.
fn client_config(roots: RootCertStore) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("no usable TLS version: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Turns Nagle off on a new connection (see the module's doc). A socket that refuses keeps
/// working, only slower on small writes.
fn no_delay(connection: Connection<Uri, TcpStream>) -> Connection<Uri, TcpStream> {
    let _ = connection.io_ref().set_nodelay(true);
    connection
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Outbound")
            .field(&if self.has_extra_ca() {
                "public roots + ca_file"
            } else {
                "public roots"
            })
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection the clients open passes through `no_delay` (see `client`).
    #[actix_rt::test]
    async fn a_new_connection_has_nagle_turned_off() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        assert!(
            !stream.nodelay().unwrap(),
            "a fresh socket starts with Nagle on"
        );
        let connection = no_delay(Connection::new(Uri::from_static("https://x"), stream));
        assert!(connection.io_ref().nodelay().unwrap());
    }

    #[test]
    fn a_ca_file_is_loaded_at_startup_and_an_unreadable_one_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        let ca = dir.path().join("company-ca.pem");
        std::fs::write(&path, format!("[upstream]\nca_file = {:?}\n", ca.display())).unwrap();
        let settings = crate::settings::Settings::load(Some(&path)).unwrap();
        let err = Outbound::for_upstream(&settings.upstream)
            .unwrap_err()
            .to_string();
        assert!(err.contains("upstream.ca_file"), "{err}");
        assert!(err.contains("company-ca.pem"), "{err}");

        let certificate = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(&ca, certificate.cert.pem()).unwrap();
        let s = crate::settings::Settings::load(Some(&path)).unwrap();
        assert!(Outbound::for_upstream(&s.upstream).unwrap().has_extra_ca());
        let defaults = crate::settings::Settings::defaults().unwrap();
        assert!(!Outbound::for_upstream(&defaults.upstream)
            .unwrap()
            .has_extra_ca());
    }

    #[test]
    fn no_file_keeps_the_public_roots() {
        assert!(!Outbound::load(None).unwrap().has_extra_ca());
    }

    #[test]
    fn a_missing_or_empty_file_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = Outbound::load(Some(&missing)).unwrap_err();
        assert!(error.contains("missing.pem"), "{error}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = Outbound::load(Some(&empty)).unwrap_err();
        assert!(error.contains("no PEM certificate"), "{error}");
    }

    #[test]
    fn a_ca_file_is_trusted_besides_the_public_roots() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(&path, ca.cert.pem()).unwrap();
        let tls = Outbound::load(Some(&path)).unwrap();
        assert!(tls.has_extra_ca());
        let config = tls.0.unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
