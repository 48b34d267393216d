//! The relay's HTTP/1 servers, from the listening socket to the app: built from actix-server and
//! actix-http as actix-web's `HttpServer::listen` builds them (same timeouts, keep-alive,
//! graceful drain, app config), with each accepted connection wrapped in a [`Connection`], so
//! that the three answers actix-http's dispatcher writes itself, below every service (a
//! malformed head, a head too large, a head too slow; `refusal.rs`), carry the OpenAI error
//! body like every other error of the relay. `HttpServer` offers no hook on the accepted stream.

mod connection;
mod refusal;

use std::fmt;
use std::net::TcpListener;
use std::time::Duration;

use actix_http::body::MessageBody;
use actix_http::error::DispatchError;
use actix_http::{HttpService, KeepAlive, Protocol, Request, Response};
use actix_server::{Server, ServerBuilder};
use actix_service::{fn_service, map_config, IntoServiceFactory, ServiceFactory};
use actix_service::{Service, ServiceFactoryExt as _};
use actix_web::dev::AppConfig;
use actix_web::rt::net::TcpStream;

pub use self::connection::Connection;

/// How long a connection's first request head may take to arrive (actix-web's default): the
/// dispatcher then answers 408 and closes.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a closing connection may take to shut down (actix-web's default).
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What differs between the relay's two servers.
#[derive(Debug, Clone, Copy)]
pub struct Plane {
    pub workers: usize,
    /// Whether a client that closes its side of the connection keeps its request running.
    pub half_closed: bool,
    /// Whether small writes go out at once (`TCP_NODELAY`).
    pub no_delay: bool,
    /// How long a graceful stop waits for the connections in flight before it cuts them.
    pub shutdown_grace: Duration,
}

/// Serves the app `app` builds (once per worker) on `listener`.
pub fn serve<F, I, S, B>(listener: TcpListener, plane: Plane, app: F) -> std::io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let addr = listener.local_addr()?;
    // The process's signals are handled once for both planes (`startup::signals`): left to each
    // server, the first to stop would stop the runtime under the other's drain.
    let builder = ServerBuilder::new()
        .workers(plane.workers)
        .shutdown_timeout(plane.shutdown_grace.as_secs())
        .disable_signals();
    let drain = builder.graceful_shutdown_signal();
    let name = format!("actix-web-service-{addr}");
    let server = builder.listen(name, listener, move || {
        let drain = drain.clone();
        let app = app()
            .into_factory()
            .map_err(|error| error.into().error_response());
        // The app config `HttpServer` gives: plain HTTP, this address as the host.
        let config = AppConfig::__priv_test_new(false, addr.to_string(), addr);
        let http = HttpService::build()
            .graceful_shutdown_signal(move || {
                let drain = drain.clone();
                async move { drain.notified().await }
            })
            .keep_alive(KeepAlive::default())
            .client_request_timeout(HEAD_TIMEOUT)
            .client_disconnect_timeout(DISCONNECT_TIMEOUT)
            .h1_allow_half_closed(plane.half_closed)
            .local_addr(addr)
            .finish(map_config(app, move |_| config.clone()));
        fn_service(move |io: TcpStream| async move {
            if plane.no_delay {
                let _ = io.set_nodelay(true);
            }
            let peer = io.peer_addr().ok();
            Ok::<_, DispatchError>((Connection::new(io), Protocol::Http1, peer))
        })
        .and_then(http)
    })?;
    Ok(server.run())
}
