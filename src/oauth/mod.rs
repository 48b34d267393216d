//! Codex OAuth logins: reading the Codex CLI's `auth.json` and the claims inside its JWTs, the
//! issuer's endpoints ([`endpoint`]), token refresh for the actors ([`refresher`]), and the
//! headless login flows ([`pkce`], [`authorize`], [`device`], [`login`]).

pub mod auth_json;
pub mod authorize;
pub mod claims;
pub mod device;
pub mod endpoint;
pub mod login;
pub mod onboarding;
pub mod pkce;
pub mod refresher;
pub mod sessions;
