//! Credentials the CLI changes while the server runs: the active API keys and the admin tokens
//! are re-read on the store's sync rhythm, so creations and revocations take effect without a
//! restart.

use std::sync::Arc;
use std::time::Duration;

use slog::{warn, Logger};

use super::{AdminTokenRing, KeyRing};
use crate::governance::Governor;
use crate::store::Store;

/// Re-reads the API keys and the admin tokens every `interval`, for as long as the server's
/// runtime lives (or until the returned task is aborted), so the CLI's creations and revocations
/// take effect without a restart. A failed read keeps the previous set. Each round also forgets
/// the client addresses whose failed-authentication budget is whole again.
pub fn spawn_credential_sync(
    store: Store,
    keys: Arc<KeyRing>,
    governor: Governor,
    admin_tokens: Arc<AdminTokenRing>,
    interval: Duration,
    log: Logger,
) -> actix_web::rt::task::JoinHandle<()> {
    actix_web::rt::spawn(async move {
        let mut ticker = actix_web::rt::time::interval(interval);
        loop {
            ticker.tick().await;
            governor
                .auth_failures()
                .sweep(std::time::Instant::now(), &log);
            match keys.load(&store).await {
                Ok(()) => governor.forget_all_but(&keys.subjects()),
                Err(error) => {
                    warn!(log, "could not re-read API keys; keeping the previous set"; "error" => error.to_string());
                }
            }
            if let Err(error) = admin_tokens.load(&store).await {
                warn!(log, "could not re-read admin tokens; keeping the previous set"; "error" => error.to_string());
            }
        }
    })
}
