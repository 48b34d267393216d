//! JWT claims through `oauth::claims::parse`: the input as a token itself, and the input as the
//! payload of a token (base64url-encoded the way the issuer does, with and without padding).
//!
//! Invariants: nothing panics; a token is read only when it has three parts; a payload is read
//! only when it is JSON (as serde_json reads it: the keys it skips are not checked for
//! UTF-8), and reads the same with or without base64 padding.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use codex_relay::oauth::claims;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        if claims::parse(token, "id token").is_ok() {
            assert_eq!(token.split('.').count(), 3, "read only with three parts");
        }
    }
    let payload = URL_SAFE_NO_PAD.encode(data);
    let read = claims::parse(&format!("e30.{payload}.sig"), "access token");
    if read.is_ok() {
        let json = serde_json::from_slice::<serde::de::IgnoredAny>(data);
        assert!(json.is_ok(), "read only from JSON");
    }
    let padding = "=".repeat((4 - payload.len() % 4) % 4);
    let padded = claims::parse(&format!("e30.{payload}{padding}.sig"), "access token");
    assert_eq!(padded, read, "padding changes nothing");
});
