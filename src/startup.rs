//! Building the running service: store-backed actors, the key rings, the governor (limits and
//! quotas, with this month's usage), the model registry (first catalog fetch), and the two HTTP
//! servers — the data plane (`server.listen`) and the admin plane (`admin.listen`), and the
//! settings reload on SIGHUP (`reload`). The binary and the integration tests both start the relay
//! through [`Application::build`].

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::rt::task::JoinHandle;
use actix_web::{web, App};
use arc_swap::ArcSwap;
use relay_actors::{GetPoolStatus, RouterActor, Shutdown};
use slog::{info, warn, Logger};

use crate::admin::{self, AdminState};
use crate::audit::Audit;
use crate::capture::Capture;
use crate::credentials::AdminTokenRing;
use crate::edge::bare_errors::shape_bare_errors;
use crate::edge::context;
use crate::edge::metrics::RequestMetrics;
use crate::governance::websockets::Stopping;
use crate::governance::Governor;
use crate::http;
use crate::intake::BodyLimits;
use crate::oauth::endpoint::OauthEndpoint;
use crate::oauth::onboarding::Onboarding;
use crate::obs;
use crate::obs::metrics::{Exposition, Registry};
use crate::obs::LogLevelSwitch;
use crate::reload::{self, Reloader};
use crate::settings::Settings;
use crate::state::AppState;
use crate::store::{Store, StoreError};
use crate::upstream::outbound::{CaFileError, Outbound};
use crate::upstream::UpstreamClient;
use crate::wire::{self, Plane};
use services::Core;

mod services;
mod signals;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr} (setting `{setting}`): {source}")]
    Bind {
        setting: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "refusing to open the admin plane on {addr}, beyond loopback, while no admin token exists \
         (setting `admin.listen`); create one first with `codex-relay admin-token create --scope write`"
    )]
    AdminUnprotected { addr: SocketAddr },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    CaFile(#[from] CaFileError),
    #[error("content capture: {0}")]
    Capture(#[from] crate::capture::CaptureError),
}

/// A started relay: its addresses and the server futures to await.
pub struct Application {
    addr: SocketAddr,
    admin_addr: SocketAddr,
    server: Server,
    admin: Server,
    governor: Governor,
    capture: Capture,
    /// Tells the WebSocket connections a graceful stop has begun.
    stopping: Stopping,
    log: Logger,
    background: Background,
}

/// How long a stopping relay waits for queued usage to reach the store (and queued captured
/// calls, the capture file).
const USAGE_FLUSH: Duration = Duration::from_secs(5);

/// Stops both planes of a started relay, then its actors and background loops.
#[derive(Clone)]
pub struct AppHandle {
    data: ServerHandle,
    admin: ServerHandle,
    governor: Governor,
    capture: Capture,
    /// Tells the WebSocket connections a graceful stop has begun.
    stopping: Stopping,
    log: Logger,
    background: Background,
}

/// What a relay runs besides its servers: the router with its account actors, and the loops
/// that re-read credentials and the model catalog. Their timers would keep them running for as
/// long as the runtime lives, so a relay stopped inside a process that goes on (a restart in
/// tests, an embedding) must end them, or the old relay keeps probing, refreshing tokens and
/// saving pool state beside its successor.
#[derive(Clone)]
struct Background {
    router: actix::Addr<RouterActor>,
    tasks: Arc<Vec<JoinHandle<()>>>,
    /// Its writer holds the rows of the last calls until they are written.
    audit: Audit,
}

impl Background {
    /// Adds a loop that stops with the others (before the background is shared).
    fn adopt(&mut self, task: Option<JoinHandle<()>>) {
        let Some(task) = task else {
            return;
        };
        match Arc::get_mut(&mut self.tasks) {
            Some(tasks) => tasks.push(task),
            None => task.abort(),
        }
    }

    async fn stop(&self) {
        for task in self.tasks.iter() {
            task.abort();
        }
        // A router already gone has nothing left to stop.
        let _ = self.router.send(Shutdown).await;
    }
}

impl AppHandle {
    /// Stops both planes, writes the usage still queued (bounded in time), then stops the
    /// actors and background loops.
    pub async fn stop(&self, graceful: bool) {
        self.stopping.begin();
        futures_util::future::join(self.data.stop(graceful), self.admin.stop(graceful)).await;
        flush_usage(&self.governor, &self.log).await;
        flush_audit(&self.background.audit, &self.log).await;
        flush_capture(&self.capture, &self.log).await;
        self.background.stop().await;
    }

    /// Whether the relay's router — and with it the account actors' work — has stopped.
    pub fn actors_stopped(&self) -> bool {
        !self.background.router.connected()
    }
}

/// How long a stopping relay waits for queued audit rows to be written.
const AUDIT_FLUSH: Duration = Duration::from_secs(10);

/// Waits until every audit row queued so far is written (the planes have stopped, so no more
/// come), off the arbiter; says so in the log when it could not be.
async fn flush_audit(audit: &Audit, log: &Logger) {
    let writer = audit.clone();
    let flushed = web::block(move || writer.flush(AUDIT_FLUSH)).await;
    if !matches!(flushed, Ok(true)) {
        warn!(log, "stopped before every audit row was written";
            "waited_secs" => AUDIT_FLUSH.as_secs());
    }
}

/// Waits for queued usage to reach the store, so the quotas of the calls a stopping relay
/// finished survive it; says so in the log when the store is too slow.
async fn flush_usage(governor: &Governor, log: &Logger) {
    if !governor.flush_usage(USAGE_FLUSH).await {
        warn!(log, "stopped before all token usage was written; quotas may undercount it";
            "waited_secs" => USAGE_FLUSH.as_secs());
    }
}

/// Waits for queued captured calls to reach the capture file, so the calls a stopping relay
/// finished keep their records; says so in the log when the writer is too slow.
async fn flush_capture(capture: &Capture, log: &Logger) {
    if !capture.flush(USAGE_FLUSH).await {
        warn!(log, "stopped before all captured calls were written to the capture file";
            "waited_secs" => USAGE_FLUSH.as_secs());
    }
}

/// The relay's logger, and the switch of its level when a reload may change it (the binary's;
/// a plain `Logger` has none).
pub struct RelayLog {
    pub log: Logger,
    pub level: Option<LogLevelSwitch>,
}

impl From<Logger> for RelayLog {
    fn from(log: Logger) -> RelayLog {
        RelayLog { log, level: None }
    }
}

impl Application {
    /// Starts the actors, loads keys and accounts, and binds the data plane (port 0 allowed).
    /// Must run inside an actix system.
    pub async fn build(
        settings: Settings,
        store: Store,
        log: impl Into<RelayLog>,
    ) -> Result<Application, StartupError> {
        let RelayLog { log, level } = log.into();
        let outbound = Outbound::for_upstream(&settings.upstream)?;
        let mut metrics = obs::metrics::registry();
        obs::metrics::register_build_info(&mut metrics);
        let requests = RequestMetrics::register(&mut metrics);
        let core = Core::start(&settings, &store, &outbound, &mut metrics, &log).await?;
        let admin_listen = settings.admin.listen;
        if !admin_listen.ip().is_loopback() && core.admin_tokens.is_empty() {
            return Err(StartupError::AdminUnprotected { addr: admin_listen });
        }
        let (listener, addr) = bind("server.listen", settings.server.listen)?;
        let (admin_listener, admin_addr) = bind("admin.listen", admin_listen)?;
        let admin_state = admin_state(&settings, store, &outbound, &core, metrics, &log);
        let governor = core.parts.governor.clone();
        let live = Arc::new(ArcSwap::from_pointee(settings));
        let reloader = Reloader::new(
            reload::Parts {
                live: Arc::clone(&live),
                governor: governor.clone(),
                models: Arc::clone(&core.parts.models),
                level,
            },
            log.clone(),
        );
        let state = AppState::new(live, core.parts, log);
        let server = serve(state.clone(), outbound, requests.data, listener)
            .map_err(|source| bind_error("server.listen", addr, source))?;
        let admin = serve_admin(
            state.clone(),
            admin_state,
            requests.admin,
            reloader.clone(),
            admin_listener,
        )
        .map_err(|source| bind_error("admin.listen", admin_addr, source))?;
        let mut background = core.background;
        background.adopt(follow_hangups(reloader, state.log()));
        log_listening(&state, &core.admin_tokens, addr, admin_addr).await;
        Ok(Application {
            addr,
            admin_addr,
            server,
            admin,
            governor,
            capture: state.capture().clone(),
            stopping: state.websockets().stopping().clone(),
            log: state.log().clone(),
            background,
        })
    }

    /// The data plane's bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin plane's bound address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Stops both servers (tests; the binary stops on its signals, see [`Self::run_until_stopped`]).
    pub fn handle(&self) -> AppHandle {
        AppHandle {
            data: self.server.handle(),
            admin: self.admin.handle(),
            governor: self.governor.clone(),
            capture: self.capture.clone(),
            stopping: self.stopping.clone(),
            log: self.log.clone(),
            background: self.background.clone(),
        }
    }

    /// Runs until both planes have stopped, then writes the usage still queued, bounded in time,
    /// and stops the actors (which store what they must first). A SIGTERM stops both planes
    /// gracefully: they stop accepting, and the calls in flight get `server.shutdown_grace_secs`
    /// to finish; SIGINT or SIGQUIT stops them at once.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let servers = [self.server.handle(), self.admin.handle()];
        let stop = signals::stop_on_signal(servers, self.stopping.clone(), self.log.clone());
        let on_signal = actix_web::rt::spawn(stop);
        let (data, admin) = futures_util::future::join(self.server, self.admin).await;
        on_signal.abort();
        flush_usage(&self.governor, &self.log).await;
        flush_audit(&self.background.audit, &self.log).await;
        flush_capture(&self.capture, &self.log).await;
        self.background.stop().await;
        data.and(admin)
    }
}

/// Reloads the settings on each SIGHUP, listened for from now on: before the relay says it is
/// up, since a SIGHUP nobody listens for ends the process.
fn follow_hangups(reloader: Reloader, log: &Logger) -> Option<JoinHandle<()>> {
    match reload::hangups() {
        Ok(hangups) => Some(actix_web::rt::spawn(reload::reload_on_hangup(
            hangups, reloader,
        ))),
        Err(e) => {
            warn!(log, "cannot listen for SIGHUP; reload the settings with POST /admin/v1/reload";
                "error" => e.to_string());
            None
        }
    }
}

/// The admin plane's state, with the OAuth flows that add accounts to the pool.
fn admin_state(
    settings: &Settings,
    store: Store,
    outbound: &Outbound,
    core: &Core,
    metrics: Registry,
    log: &Logger,
) -> AdminState {
    let router = core.parts.leases.router().clone();
    let onboarding = Arc::new(Onboarding::new(
        OauthEndpoint::new(&settings.oauth, &settings.upstream, outbound),
        store.clone(),
        router.clone(),
        log.clone(),
    ));
    let admin_tokens = Arc::clone(&core.admin_tokens);
    let metrics = Exposition::new(metrics)
        .before_encoding(core.parts.pool_metrics.clone())
        .before_encoding(core.parts.memory.clone());
    let metrics = Arc::new(metrics);
    AdminState::new(
        store,
        router,
        admin_tokens,
        onboarding,
        metrics,
        log.clone(),
    )
}

/// The operator's line that the relay is up: where it listens, and what it serves from.
async fn log_listening(
    state: &AppState,
    admin_tokens: &AdminTokenRing,
    addr: SocketAddr,
    admin_addr: SocketAddr,
) {
    let pool = state.router().send(GetPoolStatus).await.unwrap_or_default();
    info!(state.log(), "listening";
        "addr" => addr.to_string(), "admin_addr" => admin_addr.to_string(),
        "accounts" => pool.accounts, "api_keys" => state.keys().len(),
        "admin_tokens" => admin_tokens.len(),
        "upstream" => state.settings().upstream.base_url.to_string());
    if admin_tokens.is_empty() {
        info!(state.log(), "no admin token exists yet: the admin API refuses every call until one is created with `codex-relay admin-token create`");
    }
}

fn bind_error(setting: &'static str, addr: SocketAddr, source: std::io::Error) -> StartupError {
    StartupError::Bind {
        setting,
        addr,
        source,
    }
}

fn bind(
    setting: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), StartupError> {
    let error = |source| bind_error(setting, addr, source);
    let listener = listen(addr).map_err(error)?;
    let bound = listener.local_addr().map_err(error)?;
    Ok((listener, bound))
}

/// Connections the kernel queues before the relay accepts them. The standard library asks for
/// 128, too few for a burst of clients (thousands of held streams connecting at once); this is
/// actix-web's own default.
const ACCEPT_BACKLOG: i32 = 1024;

/// A listening socket, as `TcpListener::bind` makes one but with a deeper accept queue (the mock
/// upstream's bench mode binds with it too).
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(ACCEPT_BACKLOG)?;
    Ok(socket.into())
}

fn shutdown_grace(settings: &Settings) -> Duration {
    Duration::from_secs(settings.server.shutdown_grace_secs)
}

fn serve(
    state: AppState,
    outbound: Outbound,
    requests: RequestMetrics,
    listener: TcpListener,
) -> std::io::Result<Server> {
    let settings = state.settings().clone();
    let plane = Plane {
        workers: match settings.server.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        },
        // A client that closes its side has gone: drop its handler (and so the upstream call)
        // at once, also while a non-streaming answer is still being assembled.
        half_closed: false,
        // Streams are many small writes (an event per token): with Nagle's algorithm on, each
        // waits for the client's delayed ACK of the one before, up to 40 ms.
        no_delay: true,
        shutdown_grace: shutdown_grace(&settings),
    };
    wire::serve(listener, plane, move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(web::Data::new(requests.clone()))
            // awc clients are !Send: each worker gets its own connection pool.
            .app_data(web::Data::new(UpstreamClient::new(
                &settings.upstream,
                &outbound,
            )))
            .configure(http::routes)
            .default_service(web::to(http::not_found))
            .wrap(from_fn(shape_bare_errors))
            .wrap(from_fn(context::request_context))
    })
}

fn serve_admin(
    state: AppState,
    admin_state: AdminState,
    requests: RequestMetrics,
    reloader: Reloader,
    listener: TcpListener,
) -> std::io::Result<Server> {
    let admin_body = BodyLimits {
        max_bytes: admin::MAX_BODY_BYTES,
        deadline: Duration::from_secs(state.settings().server.body_read_timeout_secs),
    };
    // actix-web's defaults, as the admin plane always had.
    let plane = Plane {
        workers: 1,
        half_closed: true,
        no_delay: false,
        shutdown_grace: shutdown_grace(&state.settings()),
    };
    wire::serve(listener, plane, move || {
        App::new()
            // The data plane's state gives the admin plane its logger and request context.
            .app_data(web::Data::new(state.clone()))
            .app_data(web::Data::new(admin_state.clone()))
            .app_data(web::Data::new(requests.clone()))
            .app_data(web::Data::new(reloader.clone()))
            .app_data(admin_body)
            .configure(admin::routes)
            .default_service(web::to(admin::not_found))
            .wrap(from_fn(shape_bare_errors))
            .wrap(from_fn(context::request_context))
    })
}
