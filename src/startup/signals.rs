//! The process's stop signals, taken once for both planes: SIGTERM drains (both listeners close at
//! once, the calls in flight get `server.shutdown_grace_secs` to finish), SIGINT and SIGQUIT stop
//! at once. actix-server's own handling is off (`wire::serve`): each server would take a signal
//! alone, and the first to finish — the idle admin plane — would stop the runtime, cutting the
//! data plane's streams in the middle of their drain.

use actix_web::dev::ServerHandle;
use actix_web::rt::signal::unix::{signal, SignalKind};
use futures_util::future::{join_all, select_all};
use slog::{info, warn, Logger};

use crate::governance::websockets::Stopping;

/// Waits for the first stop signal, then stops `servers`: gracefully on SIGTERM. Resolves once
/// they have stopped; never, if no signal can be listened for (the process then stops only when
/// killed, as the log says).
pub(super) async fn stop_on_signal(servers: [ServerHandle; 2], stopping: Stopping, log: Logger) {
    let graceful = match first_signal().await {
        Ok(StopSignal::Terminate) => {
            info!(log, "SIGTERM: draining the calls in flight");
            // Idle WebSocket connections would hold the drain for its whole grace.
            stopping.begin();
            true
        }
        Ok(StopSignal::Now(name)) => {
            info!(log, "stopping at once, calls in flight are cut"; "signal" => name);
            false
        }
        Err(e) => {
            warn!(log, "cannot listen for stop signals; only SIGKILL stops the relay";
                "error" => e.to_string());
            return futures_util::future::pending().await;
        }
    };
    join_all(servers.iter().map(|server| server.stop(graceful))).await;
}

/// What a received signal asks for.
enum StopSignal {
    Terminate,
    Now(&'static str),
}

/// The first of SIGTERM, SIGINT and SIGQUIT to arrive.
async fn first_signal() -> std::io::Result<StopSignal> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    let arrivals = [
        Box::pin(terminate.recv()),
        Box::pin(interrupt.recv()),
        Box::pin(quit.recv()),
    ];
    let (_, first, _) = select_all(arrivals).await;
    Ok(match first {
        0 => StopSignal::Terminate,
        1 => StopSignal::Now("SIGINT"),
        _ => StopSignal::Now("SIGQUIT"),
    })
}
