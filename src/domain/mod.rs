//! The relay's shared vocabulary: plain data that every layer may use and that uses no other
//! module of the relay — who is counted ([`Scope`], [`Subject`]), how much ([`Usage`]), what
//! governs a caller ([`Limits`], [`KeyPolicy`], [`TenantPolicy`], [`KeySettings`],
//! [`TenantSettings`]) and a login's tokens ([`TokenSet`]). Behaviour on these types lives with
//! the layer that owns it (the store persists them, governance enforces them).

mod policy;
mod tokens;
mod usage;

pub use policy::{KeyPolicy, KeySettings, Limits, TenantPolicy, TenantSettings};
pub use tokens::TokenSet;
pub use usage::{Scope, Subject, Usage};
