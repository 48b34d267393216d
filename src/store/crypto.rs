//! Sealing of credentials at rest: XChaCha20-Poly1305 with a random nonce per seal.
//!
//! Envelope: `version (1) | key id (4) | nonce (24) | ciphertext+tag`. The additional data binds a
//! sealed value to its row and column, so a value copied into another row or column fails to open.
//! The key id lets a store hold values sealed under an older key while keys rotate.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::{Digest, Sha256};

use super::files;

const ENVELOPE_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the master key must be base64 of exactly 32 bytes ({0})")]
    BadKey(&'static str),
    #[error("cannot read the master key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the store {store} holds credentials sealed with master key {sealed_with}, but its key \
         file {key_file} is missing. Restore master.key there from your backup, or set \
         CODEX_RELAY_MASTER_KEY_FILE to where the key is (or CODEX_RELAY_MASTER_KEY_COMMAND to a \
         command that prints it, or CODEX_RELAY_MASTER_KEY to the key itself). No new key is generated: it could not open what is stored. To start afresh \
         instead, move the store away or point store.path elsewhere."
    )]
    KeyFileMissing {
        store: PathBuf,
        key_file: PathBuf,
        sealed_with: String,
    },
    #[error("a sealed value is damaged or was sealed for another row")]
    Corrupt,
    #[error(
        "a sealed value was sealed under master key {found}, but the configured key is {expected}"
    )]
    WrongKey { expected: String, found: String },
    #[error(
        "both {first} and {second} are set: set only one, so that which key the relay uses is \
         never a guess"
    )]
    TwoSources {
        first: &'static str,
        second: &'static str,
    },
    #[error("the master key command (CODEX_RELAY_MASTER_KEY_COMMAND) {0}")]
    Command(String),
}

/// The key that seals every credential. Its bytes never appear in Debug output.
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    id: [u8; KEY_ID_LEN],
    _bytes: SecretSlice<u8>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id_hex())
            .finish()
    }
}

impl MasterKey {
    /// Builds a key from its base64 text (surrounding white space ignored).
    pub fn from_base64(text: &str) -> Result<MasterKey, CryptoError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| CryptoError::BadKey("not valid base64"))?;
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, CryptoError> {
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey("wrong length"));
        }
        let digest = Sha256::digest(bytes);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        let cipher = XChaCha20Poly1305::new_from_slice(bytes)
            .map_err(|_| CryptoError::BadKey("wrong length"))?;
        Ok(MasterKey {
            cipher,
            id,
            _bytes: SecretSlice::from(bytes.to_vec()),
        })
    }

    /// The key itself, for sealing it under another key in a rekey's handover.
    pub(super) fn secret_bytes(&self) -> &[u8] {
        self._bytes.expose_secret()
    }

    /// A fresh random key.
    pub fn generate() -> MasterKey {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        // A freshly generated key always has the right length.
        match Self::from_bytes(key.as_slice()) {
            Ok(key) => key,
            Err(_) => unreachable!("generated keys are 32 bytes"),
        }
    }

    /// The key's public fingerprint (first bytes of its SHA-256), as written in each envelope.
    pub fn id_hex(&self) -> String {
        hex(&self.id)
    }

    /// Reads a key file (base64 text; surrounding white space ignored).
    pub fn read_file(path: &Path) -> Result<MasterKey, CryptoError> {
        let text = fs::read_to_string(path).map_err(|source| CryptoError::KeyFile {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_base64(&text)
    }

    /// Seals `plaintext` for the cell (`row`, `column`).
    pub fn seal(&self, row: &str, column: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = aad(row, column);
        let payload = Payload {
            msg: plaintext,
            aad: &aad,
        };
        // Encryption with a valid key and nonce cannot fail for in-memory buffers.
        let ciphertext = self.cipher.encrypt(&nonce, payload).unwrap_or_default();
        let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        out.push(ENVELOPE_VERSION);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Opens a value sealed by [`MasterKey::seal`] for the same cell.
    pub fn open(&self, row: &str, column: &str, envelope: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if envelope.len() < HEADER_LEN + 16 || envelope[0] != ENVELOPE_VERSION {
            return Err(CryptoError::Corrupt);
        }
        let key_id = &envelope[1..1 + KEY_ID_LEN];
        if key_id != self.id {
            return Err(CryptoError::WrongKey {
                expected: self.id_hex(),
                found: hex(key_id),
            });
        }
        let nonce = XNonce::from_slice(&envelope[1 + KEY_ID_LEN..HEADER_LEN]);
        let aad = aad(row, column);
        let payload = Payload {
            msg: &envelope[HEADER_LEN..],
            aad: &aad,
        };
        self.cipher
            .decrypt(nonce, payload)
            .map_err(|_| CryptoError::Corrupt)
    }
}

fn aad(row: &str, column: &str) -> Vec<u8> {
    format!("codex-relay/v1/{row}/{column}").into_bytes()
}

/// The id of the key an envelope was sealed with, as [`MasterKey::id_hex`] writes it.
pub fn sealed_by(envelope: &[u8]) -> Option<String> {
    (envelope.len() >= HEADER_LEN && envelope[0] == ENVELOPE_VERSION)
        .then(|| hex(&envelope[1..1 + KEY_ID_LEN]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whose key a key file holds after [`write_key_file`].
pub(super) enum Written {
    Ours(MasterKey),
    Theirs,
}

/// Writes `key` to `path` (0600, its folder 0700) unless a key file is already there. The key
/// goes to a file of its own first and is linked into place whole, so a process starting at
/// the same moment never reads half a key, and of two such processes one key wins.
pub(super) fn write_key_file(path: &Path, key: MasterKey) -> Result<Written, CryptoError> {
    let io_error = |source| CryptoError::KeyFile {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            files::create_private_folder(dir).map_err(io_error)?;
        }
    }
    let mut fresh = path.as_os_str().to_owned();
    fresh.push(format!(".new-{}", uuid::Uuid::new_v4()));
    let fresh = PathBuf::from(fresh);
    let written = write_new_private(&fresh, &key).and_then(|()| fs::hard_link(&fresh, path));
    let _ = fs::remove_file(&fresh);
    match written {
        Ok(()) => Ok(Written::Ours(key)),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(Written::Theirs),
        Err(error) => Err(io_error(error)),
    }
}

fn write_new_private(path: &Path, key: &MasterKey) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    let text = STANDARD.encode(key._bytes.expose_secret());
    file.write_all(format!("{text}\n").as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_in_its_own_cell() {
        let key = MasterKey::generate();
        let sealed = key.seal("acct-1", "refresh_token", b"rt_secret");
        assert_eq!(
            key.open("acct-1", "refresh_token", &sealed).unwrap(),
            b"rt_secret"
        );
        assert!(matches!(
            key.open("acct-2", "refresh_token", &sealed),
            Err(CryptoError::Corrupt)
        ));
        assert!(matches!(
            key.open("acct-1", "access_token", &sealed),
            Err(CryptoError::Corrupt)
        ));
    }

    #[test]
    fn every_seal_uses_a_new_nonce() {
        let key = MasterKey::generate();
        assert_ne!(key.seal("r", "c", b"x"), key.seal("r", "c", b"x"));
    }

    #[test]
    fn another_key_is_named_not_garbage() {
        let sealed = MasterKey::generate().seal("r", "c", b"x");
        let err = MasterKey::generate().open("r", "c", &sealed).unwrap_err();
        assert!(matches!(err, CryptoError::WrongKey { .. }));
    }

    #[test]
    fn tampering_is_detected() {
        let key = MasterKey::generate();
        let mut sealed = key.seal("r", "c", b"secret");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(
            key.open("r", "c", &sealed),
            Err(CryptoError::Corrupt)
        ));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert!(MasterKey::from_base64(&STANDARD.encode([0u8; 16])).is_err());
        assert!(MasterKey::from_base64(&STANDARD.encode([7u8; 32])).is_ok());
    }

    #[test]
    fn a_generated_key_file_is_private_and_a_second_writer_keeps_the_first_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/master.key");
        let key = MasterKey::generate();
        let id = key.id_hex();
        assert!(matches!(write_key_file(&path, key), Ok(Written::Ours(_))));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
        let second = write_key_file(&path, MasterKey::generate());
        assert!(matches!(second, Ok(Written::Theirs)));
        assert_eq!(MasterKey::read_file(&path).unwrap().id_hex(), id);
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary key file is left behind");
    }

    #[test]
    fn an_envelope_names_the_key_it_was_sealed_with() {
        let key = MasterKey::generate();
        assert_eq!(sealed_by(&key.seal("r", "c", b"x")), Some(key.id_hex()));
        assert_eq!(sealed_by(b"short"), None);
    }
}
