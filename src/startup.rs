//! Building the running service: store-backed actors, the key ring, and the HTTP server. The
//! binary and the integration tests both start the relay through [`Application::build`].

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use relay_actors::{GetPoolStatus, RouterActor};
use slog::{info, Logger};

use crate::http::auth::KeyRing;
use crate::http::{self, context, AppState};
use crate::oauth::endpoint::OauthEndpoint;
use crate::oauth::refresher::StoreTokenRefresher;
use crate::pool::{load_keys, spawn_key_sync, StoreAccountSource};
use crate::settings::Settings;
use crate::store::{Store, StoreError};
use crate::upstream::UpstreamClient;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr} (setting `server.listen`): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A started relay: its address and the server future to await.
pub struct Application {
    addr: SocketAddr,
    server: Server,
}

impl Application {
    /// Starts the actors, loads keys and accounts, and binds the data plane (port 0 allowed).
    /// Must run inside an actix system.
    pub async fn build(
        settings: Settings,
        store: Store,
        log: Logger,
    ) -> Result<Application, StartupError> {
        let sync_interval = Duration::from_millis(settings.store.sync_interval_ms);
        let source = Arc::new(StoreAccountSource {
            store: store.clone(),
            log: log.clone(),
        });
        let refresher = Arc::new(StoreTokenRefresher {
            store: store.clone(),
            endpoint: OauthEndpoint::new(&settings.oauth, &settings.upstream),
            log: log.clone(),
        });
        let router = RouterActor::new(source, sync_interval)
            .with_refresher(refresher, settings.oauth.refresh_policy())
            .start();
        let keys = Arc::new(KeyRing::default());
        load_keys(&store, &keys).await?;
        spawn_key_sync(store.clone(), Arc::clone(&keys), sync_interval, log.clone());
        wait_for_first_sync(&router).await;

        let listen = settings.server.listen;
        let listener = TcpListener::bind(listen).map_err(|source| StartupError::Bind {
            addr: listen,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: listen,
            source,
        })?;
        let state = AppState::new(settings, router, Arc::clone(&keys), log);
        let server = serve(state.clone(), listener).map_err(|source| StartupError::Bind {
            addr: listen,
            source,
        })?;
        let pool = state.router().send(GetPoolStatus).await.unwrap_or_default();
        info!(state.log(), "listening";
            "addr" => addr.to_string(), "accounts" => pool.accounts, "api_keys" => keys.len(),
            "upstream" => state.settings().upstream.base_url.to_string());
        Ok(Application { addr, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server gracefully (tests; the binary stops on SIGINT/SIGTERM).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

fn serve(state: AppState, listener: TcpListener) -> std::io::Result<Server> {
    let settings = state.settings().clone();
    let workers = match settings.server.workers {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            // awc clients are !Send: each worker gets its own connection pool.
            .app_data(web::Data::new(UpstreamClient::new(&settings.upstream)))
            .app_data(web::PayloadConfig::new(settings.server.max_body_bytes))
            .configure(http::routes)
            .default_service(web::to(http::not_found))
            .wrap(from_fn(context::request_context))
    })
    .workers(workers)
    // A client that closes its side has gone: drop its handler (and so the upstream call) at
    // once, also while a non-streaming answer is still being assembled.
    .h1_allow_half_closed(false)
    .listen(listener)?
    .run();
    Ok(server)
}

/// The first read of the store runs in the background; wait for it (bounded) so a request that
/// arrives right after startup finds the pool loaded.
async fn wait_for_first_sync(router: &actix::Addr<RouterActor>) {
    for _ in 0..500 {
        if let Ok(status) = router.send(GetPoolStatus).await {
            if status.synced {
                return;
            }
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
}
