//! What the relay's WebSocket connections share: how many each API key holds open (capped by
//! `websocket.max_connections_per_key`), and until when turns go over HTTP because the upstream
//! refused a WebSocket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::super::error::ApiError;

#[derive(Default)]
pub struct WebSockets {
    open: Arc<Mutex<HashMap<String, usize>>>,
    /// Unix milliseconds until which the upstream WebSocket is not tried (0: it is).
    http_until_ms: AtomicU64,
}

impl WebSockets {
    /// Counts a new connection of `key_id`, or refuses it past `limit`.
    pub fn open(&self, key_id: &str, limit: usize) -> Result<OpenConnection, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key_id.to_owned()).or_default();
        if *count >= limit {
            return Err(ApiError::TooManyConnections { limit });
        }
        *count += 1;
        Ok(OpenConnection {
            open: Arc::clone(&self.open),
            key_id: key_id.to_owned(),
        })
    }

    /// Connections `key_id` holds open now.
    pub fn open_for(&self, key_id: &str) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(key_id).copied().unwrap_or(0)
    }

    /// The upstream refused a WebSocket: turns go over HTTP for `period`.
    pub fn fall_back_for(&self, period: Duration) {
        let until = now_ms().saturating_add(period.as_millis() as u64);
        self.http_until_ms.store(until, Ordering::Relaxed);
    }

    /// Whether turns go over HTTP now.
    pub fn falls_back(&self) -> bool {
        self.http_until_ms.load(Ordering::Relaxed) > now_ms()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One open connection, counted against its key until dropped.
pub struct OpenConnection {
    open: Arc<Mutex<HashMap<String, usize>>>,
    key_id: String,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_at_most_its_limit_and_a_closed_connection_frees_its_place() {
        let sockets = WebSockets::default();
        let first = sockets.open("key_a", 2).unwrap();
        let _second = sockets.open("key_a", 2).unwrap();
        assert!(matches!(
            sockets.open("key_a", 2),
            Err(ApiError::TooManyConnections { limit: 2 })
        ));
        let _other = sockets.open("key_b", 2).unwrap();
        drop(first);
        assert_eq!(sockets.open_for("key_a"), 1);
        let _third = sockets.open("key_a", 2).unwrap();
        assert_eq!(sockets.open_for("key_a"), 2);
    }

    #[test]
    fn a_refused_upstream_websocket_is_skipped_for_the_period_only() {
        let sockets = WebSockets::default();
        assert!(!sockets.falls_back());
        sockets.fall_back_for(Duration::from_secs(60));
        assert!(sockets.falls_back());
        sockets.fall_back_for(Duration::ZERO);
        assert!(!sockets.falls_back());
    }
}
