//! What both HTTP planes share at their edge, below either of them: the OpenAI error shape
//! ([`error`]), bearer authentication with one guard for API keys and admin tokens and the
//! failed-authentication throttle ([`guard`]), the caller's identity as the access line names it
//! ([`caller`]), the request context and access line ([`context`]) with the request's trace
//! ([`trace`]), phase timings ([`phases`]), the request metrics recorded with it ([`metrics`]) and
//! its audit row ([`audit`]),
//! and the OpenAI body for error answers no handler wrote ([`bare_errors`]).

pub mod audit;
pub mod bare_errors;
pub mod caller;
pub mod context;
pub mod error;
pub mod guard;
pub mod metrics;
pub mod phases;
pub mod trace;
