//! Who may call the relay: the active API keys and admin tokens. Both live in the store as
//! hashes; the server keeps each set in memory as a [`TokenRing`] (re-read on the store's sync
//! rhythm by [`sync`], so the CLI's creations and revocations take effect within seconds) and
//! checks a presented token without touching the disk.

mod admin_tokens;
mod api_keys;
mod ring;
pub mod sync;

pub use admin_tokens::{AdminPrincipal, AdminTokenRing};
pub use api_keys::{KeyRefusal, KeyRing, Principal};
pub use ring::TokenRing;
