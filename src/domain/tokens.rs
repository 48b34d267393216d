//! A ChatGPT login's tokens, as one value: the store seals them, the refresher replaces them, the
//! accounts serve with them.

use secrecy::SecretString;

/// One complete token set of a ChatGPT login. Always stored and replaced as a whole.
#[derive(Clone)]
pub struct TokenSet {
    pub id_token: SecretString,
    pub access_token: SecretString,
    pub refresh_token: SecretString,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSet([redacted])")
    }
}
