//! codex-relay: the OpenAI Responses API, served from a governed pool of Codex OAuth accounts.
//!
//! Layout (see docs/architecture.md): `settings` (layered configuration), `bounds` (the range of
//! every operator-set limit and what a name may be), `store` (SQLite and
//! sealed credentials), `oauth` (Codex logins), `http` (the data plane), `admin` (the admin
//! plane), `intake` (request bodies read within their limits, for both planes), `upstream` (the
//! Codex backend client and SSE side path), `request_body` (a request's fields kept raw),
//! `compat` (request normalization), `governance` (keys, tenants, limits, quotas, models),
//! `pool` (the account pool: store ↔ actors), `credential_sync` (API keys and admin tokens
//! re-read while the server runs), `obs` (logs and redaction), `wire` (the HTTP/1 servers, over each
//! accepted connection), `startup` (wiring), `cli` (the command line). The actors live
//! in the `relay-actors` crate.

pub mod admin;
pub mod bounds;
pub mod cli;
pub mod compat;
pub mod credential_sync;
pub mod domain;
pub mod governance;
pub mod http;
pub mod intake;
pub mod nesting;
pub mod oauth;
pub mod obs;
pub mod pool;
pub mod request_body;
pub mod settings;
pub mod startup;
pub mod store;
pub mod upstream;
pub mod wire;
