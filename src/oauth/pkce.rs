//! PKCE and `state` for browser logins, made as the Codex CLI makes them: the verifier is
//! base64url of 64 random bytes, the challenge base64url(SHA-256(verifier)), the state 32 random
//! bytes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

/// A PKCE pair. The verifier is a secret: it never leaves the server.
pub struct Pkce {
    pub verifier: SecretString,
    pub challenge: String,
}

impl Pkce {
    pub fn generate() -> Pkce {
        let verifier = random_base64url(64);
        let challenge = challenge_of(&verifier);
        Pkce {
            verifier: SecretString::from(verifier),
            challenge,
        }
    }
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkce")
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}

/// base64url(SHA-256(verifier)), no padding.
pub fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A fresh `state` value.
pub fn random_state() -> String {
    random_base64url(32)
}

fn random_base64url(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Compares two texts in time independent of where they differ (for `state`).
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn the_pair_has_the_codex_shape() {
        let pkce = Pkce::generate();
        assert_eq!(pkce.verifier.expose_secret().len(), 86);
        assert_eq!(pkce.challenge, challenge_of(pkce.verifier.expose_secret()));
        assert_eq!(pkce.challenge.len(), 43);
        assert_ne!(Pkce::generate().challenge, pkce.challenge);
        assert_eq!(random_state().len(), 43);
        assert!(!format!("{pkce:?}").contains(pkce.verifier.expose_secret()));
    }

    #[test]
    fn rfc_7636_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            challenge_of(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
