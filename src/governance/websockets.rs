//! The Responses WebSocket connections each API key holds open, capped by
//! `websocket.max_connections_per_key` (a connection lives long, and each holds two sockets and
//! an upstream WebSocket), the metric families of open and closed connections, and the signal
//! that the relay is stopping: idle connections close at once instead of holding the drain for
//! its whole grace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// [`WebSockets::default`] counts into families no registry shows.
#[derive(Default)]
pub struct WebSockets {
    open: Arc<Mutex<HashMap<String, usize>>>,
    metrics: SocketMetrics,
    stopping: Stopping,
}

/// Tells open connections that the relay is stopping (a graceful stop has begun).
#[derive(Clone)]
pub struct Stopping(Arc<watch::Sender<bool>>);

impl Default for Stopping {
    fn default() -> Stopping {
        Stopping(Arc::new(watch::Sender::new(false)))
    }
}

impl Stopping {
    pub fn begin(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once the relay is stopping.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }
}

/// A key already holds its maximum of connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyConnections {
    pub limit: usize,
}

#[derive(Clone, Default)]
struct SocketMetrics {
    open: Gauge,
    closed: Family<WhyLabels, Counter>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WhyLabels {
    why: &'static str,
}

/// Why connections end, as the `websocket_connections_closed` family names it.
pub const CLOSE_REASONS: [&str; 9] = [
    "client",
    "client_gone",
    "idle",
    "unanswered_pings",
    "binary_frame",
    "too_large",
    "key_invalid",
    "protocol_error",
    "relay_stopping",
];

impl WebSockets {
    pub fn register(registry: &mut Registry) -> WebSockets {
        let sockets = WebSockets::default();
        let metrics = &sockets.metrics;
        registry.register(
            "websocket_connections",
            "Responses WebSocket connections open now",
            metrics.open.clone(),
        );
        registry.register(
            "websocket_connections_closed",
            "Responses WebSocket connections ended, by why: client (closed it), client_gone, idle, unanswered_pings, binary_frame, too_large, key_invalid, protocol_error, relay_stopping",
            metrics.closed.clone(),
        );
        for why in CLOSE_REASONS {
            metrics.closed.get_or_create(&WhyLabels { why }).inc_by(0);
        }
        sockets
    }

    /// The signal that the relay is stopping, for the connections and for whoever stops it.
    pub fn stopping(&self) -> &Stopping {
        &self.stopping
    }

    /// A connection ended, for `why` (one of [`CLOSE_REASONS`]).
    pub fn closed(&self, why: &'static str) {
        self.metrics.closed.get_or_create(&WhyLabels { why }).inc();
    }

    /// Counts a new connection of `key_id`, or refuses it past `limit`.
    pub fn open(&self, key_id: &str, limit: usize) -> Result<OpenConnection, TooManyConnections> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key_id.to_owned()).or_default();
        if *count >= limit {
            return Err(TooManyConnections { limit });
        }
        *count += 1;
        self.metrics.open.inc();
        Ok(OpenConnection {
            open: Arc::clone(&self.open),
            key_id: key_id.to_owned(),
            gauge: self.metrics.open.clone(),
        })
    }

    /// Connections `key_id` holds open now.
    #[cfg(test)]
    pub fn open_for(&self, key_id: &str) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(key_id).copied().unwrap_or(0)
    }
}

/// One open connection, counted against its key until dropped.
pub struct OpenConnection {
    open: Arc<Mutex<HashMap<String, usize>>>,
    key_id: String,
    gauge: Gauge,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.gauge.dec();
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
            Err(TooManyConnections { limit: 2 })
        ));
        let _other = sockets.open("key_b", 2).unwrap();
        drop(first);
        assert_eq!(sockets.open_for("key_a"), 1);
        let _third = sockets.open("key_a", 2).unwrap();
        assert_eq!(sockets.open_for("key_a"), 2);
    }
}
