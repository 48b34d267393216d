//! codex-relay: the OpenAI Responses API, served from a governed pool of Codex OAuth accounts.
//!
//! The modules form layers (the table in `docs/architecture.md`, checked by `tests/layers.rs`): a
//! module imports only from layers below its own.
//!
//! ```text
//!   9 entry points         cli, startup
//!   8 planes               http (data plane), admin (admin plane)
//!   7 edge                 edge: error shape, bearer guard, caller, request context
//!   6 shared state         state: AppState
//!   5 pool, credentials    pool (store <-> actors), credentials (key and admin-token rings)
//!   4 services             oauth, governance, compat, recall, capture, audit
//!   3 resources            store (SQLite, sealed credentials), upstream (the Codex backend)
//!   2 observability        obs
//!   1 settings, transport  settings, request_body, intake, wire
//!   0 vocabulary           bounds, nesting, domain
//! ```
//! The actors live in the `relay-actors` crate, below all of these.

pub mod admin;
pub mod audit;
pub mod bounds;
pub mod capture;
pub mod cli;
pub mod compat;
pub mod credentials;
pub mod domain;
pub mod edge;
pub mod governance;
pub mod http;
pub mod intake;
pub mod nesting;
pub mod oauth;
pub mod obs;
pub mod pool;
pub mod recall;
pub mod reload;
pub mod request_body;
pub mod settings;
pub mod startup;
pub mod state;
pub mod store;
pub mod upstream;
pub mod wire;
