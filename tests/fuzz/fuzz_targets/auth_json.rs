//! An `auth.json` file through `oauth::auth_json::parse` (and so the JWT claims of its tokens),
//! as `account import` and the admin import read one.
//!
//! Invariants: nothing panics; an accepted file yields an account whose id and access token can
//! travel as header values and whose three tokens are not blank; a refused file's message never
//! repeats one of its tokens.
#![no_main]

use codex_relay::oauth::auth_json::{self, AuthJsonError};
use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match auth_json::parse(text) {
        Ok(account) => {
            assert!(header_safe(&account.chatgpt_account_id));
            let tokens = &account.tokens;
            assert!(header_safe(tokens.access_token.expose_secret()));
            for token in [
                &tokens.id_token,
                &tokens.access_token,
                &tokens.refresh_token,
            ] {
                assert!(!token.expose_secret().trim().is_empty());
            }
        }
        // That error names the file's `auth_mode`, which is not a secret (and is all it read).
        Err(AuthJsonError::ApiKeyOnly(_)) => {}
        Err(error) => {
            let message = error.to_string();
            for token in tokens_of(text) {
                assert!(
                    !message.contains(&token),
                    "a token is repeated in {message:?}"
                );
            }
        }
    }
});

/// The `tokens.*_token` strings of the file, where it has them (long enough to tell apart).
fn tokens_of(text: &str) -> Vec<String> {
    let Ok(file) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    ["id_token", "access_token", "refresh_token"]
        .iter()
        .filter_map(|name| file["tokens"][name].as_str())
        .filter(|token| token.len() >= 8)
        .map(str::to_owned)
        .collect()
}

/// `auth_json::is_header_safe`: visible ASCII, at most 16 KiB.
fn header_safe(value: &str) -> bool {
    !value.is_empty() && value.len() <= 16 * 1024 && value.bytes().all(|b| b.is_ascii_graphic())
}
