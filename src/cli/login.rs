//! `codex-relay account login --device | --paste | --listen`: onboarding an account on a host
//! with no browser. Each flow ends like `account import` (encrypted, deduplicated by ChatGPT
//! account, the same messages). Tokens and the PKCE verifier are never printed.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::BufRead;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use clap::{ArgGroup, Args};
use tokio::sync::oneshot;

use super::new_account::{checked_label, store_account};
use crate::oauth::authorize::BrowserLogin;
use crate::oauth::device;
use crate::oauth::endpoint::OauthEndpoint;
use crate::oauth::login::LoginError;
use crate::settings::Settings;
use crate::store::{NewAccount, Store};
use crate::upstream::outbound::Outbound;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("flow").required(true).args(["device", "paste", "listen"])))]
pub struct LoginArgs {
    /// Device code: open a URL on any device and enter the code shown.
    #[arg(long)]
    pub device: bool,
    /// Open the printed URL on any machine, then paste the localhost callback URL back here.
    #[arg(long)]
    pub paste: bool,
    /// Serve the callback on 127.0.0.1:1455 (reach it with `ssh -L 1455:localhost:1455 HOST`).
    #[arg(long)]
    pub listen: bool,
    /// A name for the account in listings (default: the masked email).
    #[arg(long)]
    pub label: Option<String>,
}

pub fn login(store: &Store, settings: &Settings, args: LoginArgs) -> anyhow::Result<()> {
    let label = checked_label(args.label.as_deref())?;
    let outbound = Outbound::for_upstream(&settings.upstream)?;
    let endpoint = OauthEndpoint::new(&settings.oauth, &settings.upstream, &outbound);
    let mut account = if args.device {
        block_on(device_login(&endpoint))?
    } else if args.paste {
        paste_login(&endpoint)?
    } else {
        block_on(listen_login(endpoint))?
    };
    account.label = label;
    store_account(store, &account)
}

fn block_on<T>(work: impl std::future::Future<Output = T>) -> T {
    actix_web::rt::System::new().block_on(work)
}

async fn device_login(endpoint: &OauthEndpoint) -> Result<NewAccount, LoginError> {
    let code = device::request_code(endpoint).await?;
    let minutes = endpoint.settings.device_timeout_secs.div_ceil(60);
    eprintln!(
        "To log the account in, open {} on any device, sign in, and enter this code:\n\n    {}\n\n\
         (the code expires in {minutes} minutes; never share it). Waiting for approval…",
        code.verification_url, code.user_code
    );
    let timeout = Duration::from_secs(endpoint.settings.device_timeout_secs);
    device::finish(endpoint, &code, timeout).await
}

fn paste_login(endpoint: &OauthEndpoint) -> anyhow::Result<NewAccount> {
    let login = BrowserLogin::start(endpoint, endpoint.settings.callback_port);
    eprintln!(
        "Open this URL in a browser on any machine and sign in with the ChatGPT account:\n\n    {}\n\n\
         The browser then tries to open http://localhost:{}/auth/callback?… and fails: that is \
         expected. Copy the whole address from its address bar, paste it here and press Enter:",
        login.authorize_url, endpoint.settings.callback_port
    );
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the callback URL from standard input")?;
    Ok(block_on(login.complete(endpoint, &line))?)
}

/// What the callback handler shares with the waiting command.
struct Listening {
    login: BrowserLogin,
    endpoint: OauthEndpoint,
    done: Mutex<Option<oneshot::Sender<Result<NewAccount, LoginError>>>>,
}

async fn listen_login(endpoint: OauthEndpoint) -> anyhow::Result<NewAccount> {
    let port = endpoint.settings.callback_port;
    let timeout = Duration::from_secs(endpoint.settings.login_timeout_secs);
    let (tx, rx) = oneshot::channel();
    let login = BrowserLogin::start(&endpoint, port);
    let url = login.authorize_url.clone();
    let shared = web::Data::new(Listening {
        login,
        endpoint,
        done: Mutex::new(Some(tx)),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .route("/auth/callback", web::get().to(callback))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", port))
    .with_context(|| format!("cannot listen on 127.0.0.1:{port} (setting `oauth.callback_port`)"))?
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    eprintln!(
        "Listening for the login callback on 127.0.0.1:{port}. From the machine with the browser, \
         forward the port first:\n\n    ssh -L {port}:localhost:{port} <this host>\n\n\
         then open this URL there and sign in:\n\n    {url}\n\nWaiting…"
    );
    let result = actix_web::rt::time::timeout(timeout, rx).await;
    handle.stop(true).await;
    match result {
        Ok(Ok(account)) => Ok(account?),
        Ok(Err(_)) => Err(LoginError::Cancelled("the callback server stopped".to_owned()).into()),
        Err(_) => Err(LoginError::Cancelled(format!(
            "no callback within {} minutes",
            timeout.as_secs().div_ceil(60)
        ))
        .into()),
    }
}

/// `GET /auth/callback`: a stray or stale request is refused and the login keeps waiting; the
/// real callback ends it, successful or not.
async fn callback(req: HttpRequest, shared: web::Data<Listening>) -> HttpResponse {
    let result = shared
        .login
        .complete(&shared.endpoint, req.query_string())
        .await;
    if let Err(error @ (LoginError::StateMismatch | LoginError::NotACallback)) = &result {
        return HttpResponse::BadRequest().body(format!("{error}\n"));
    }
    let page = match &result {
        Ok(_) => "Signed in. codex-relay stores the account; you can close this tab.\n".to_owned(),
        Err(error) => format!("The login failed: {error}\n"),
    };
    if let Some(done) = shared.done.lock().ok().and_then(|mut d| d.take()) {
        let _ = done.send(result);
    }
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(page)
}
