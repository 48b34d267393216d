//! Integration tests: the real relay app on port 0 against the project's mock upstream, with a
//! real SQLite store. One binary, one module per behaviour.

// Panicking is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../examples/mock_upstream/app.rs"]
mod mock_upstream;

mod helpers;

mod access_log;
mod admin;
mod admin_cli;
mod admin_governance;
mod admin_onboarding;
mod admin_pool;
mod audit;
mod audit_cli;
mod audit_failure;
mod auth;
mod backup;
mod bounds;
mod capture;
mod capture_cli;
mod cli;
mod codex_limits;
mod compaction;
mod crash;
mod doctor;
mod errors;
mod governance_updates;
mod headers;
mod intake;
mod keepalive;
mod key_sources;
mod limits;
mod login_cli;
mod metrics;
mod metrics_governance;
mod metrics_pool;
mod metrics_requests;
mod metrics_secrets;
mod model_registry;
mod models;
mod pool_affinity;
mod pool_attribution;
mod pool_cli;
mod pool_encrypted;
mod pool_failover;
mod pool_health;
mod pool_helpers;
mod pool_stream_end;
mod raw;
mod raw_errors;
mod refresh;
mod rekey;
mod reload;
mod responses_json;
mod responses_stream;
mod secrets;
mod settings_cli;
mod shutdown;
mod side_endpoints;
mod stateful;
mod stateful_bounds;
mod store_cli;
mod tenant_cli;
mod trace;
mod upstream_drift;
mod upstream_reuse;
mod upstream_streams;
mod upstream_tls;
mod websocket;
mod websocket_governance;
