//! The mock's TLS: the Codex backend is reached over HTTPS, where the relay's client negotiates
//! HTTP/2 and runs all of a worker's streams over one connection. Tests and the load benchmark
//! that only ever saw plain HTTP/1.1 would miss the path production takes.
//!
//! The certificate is made at startup for `localhost` and `127.0.0.1`, self-signed; its PEM is
//! written where the relay's `upstream.ca_file` can name it.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

/// A server setup with a fresh self-signed certificate, whose PEM is written to `cert_out`.
pub fn server_config(cert_out: &Path) -> io::Result<ServerConfig> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
    std::fs::write(cert_out, certified.cert.pem())?;
    let chain = vec![CertificateDer::from(certified.cert.der().to_vec())];
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(io::Error::other)
}
