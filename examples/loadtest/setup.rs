//! Getting the processes under test running: building the relay and the mock with this
//! benchmark's own profile, the mock in bench mode with its fake logins, and a relay per account
//! count — its own data dir, the logins imported and a key created through its command line,
//! settings through `CODEX_RELAY__SECTION__KEY` (the audit trail on, or off for the column that
//! prices it), ready when its `/readyz` says so; restarted on the same data for the WebSocket
//! phases.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use hyper::Method;

use super::client::{Call, Conn, Endpoint};
use super::procs::{self, Child};

/// The relay's global cap on upstream calls, far above any load here: the benchmark measures the
/// relay's cost, not its shedding.
const MAX_IN_FLIGHT: u32 = 50_000;
/// WebSocket connections the benchmark's key may hold open: the most the relay allows
/// (`websocket.max_connections_per_key`), so its cap is not what a phase measures.
pub const WS_PER_KEY: usize = 10_000;
/// How long a process may take to come up (a debug build on a busy machine is slow).
const STARTUP: Duration = Duration::from_secs(60);

pub struct Binaries {
    pub relay: PathBuf,
    pub mock: PathBuf,
    pub release: bool,
}

/// Builds `codex-relay` and the mock with the profile this benchmark was built with (unless
/// `skip`), and finds them in its own target dir.
pub fn build(skip: bool) -> anyhow::Result<Binaries> {
    let release = !cfg!(debug_assertions);
    if !skip {
        // `cargo run` says which cargo it is; the manifest is this package's.
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let mut command = Command::new(cargo);
        command.arg("build").arg("--manifest-path").arg(&manifest);
        if release {
            command.arg("--release");
        }
        command.args(["--bin", "codex-relay", "--example", "mock_upstream"]);
        let status = command.status().context("cannot run cargo build")?;
        if !status.success() {
            bail!("cargo build of the relay and the mock failed ({status})");
        }
    }
    // This binary is `<target>/<profile>/examples/loadtest`.
    let exe = std::env::current_exe()?;
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .context("cannot find the target dir beside this binary")?;
    let bins = Binaries {
        relay: profile.join("codex-relay"),
        mock: profile.join("examples").join("mock_upstream"),
        release,
    };
    for bin in [&bins.relay, &bins.mock] {
        if !bin.exists() {
            bail!(
                "{} is missing (build it, or drop --no-build)",
                bin.display()
            );
        }
    }
    Ok(bins)
}

/// The mock as a relay reaches it.
#[derive(Clone)]
pub enum Upstream {
    /// Plain HTTP/1.1, as direct and nginx reach it.
    Plain(SocketAddr),
    /// HTTPS, where the relay negotiates HTTP/2 as it does with the Codex backend; `ca` is the
    /// mock's certificate, for the relay's `upstream.ca_file`.
    Tls { addr: SocketAddr, ca: PathBuf },
}

/// The running mock: its plain listener and its TLS one.
pub struct Mock {
    pub child: Child,
    pub plain: SocketAddr,
    pub tls: Upstream,
}

/// Starts the mock in bench mode with `workers` workers, on a plain and a TLS listener, writing
/// logins for `logins` accounts into `dir/logins`.
pub async fn start_mock(
    bins: &Binaries,
    dir: &Path,
    workers: usize,
    logins: usize,
) -> anyhow::Result<Mock> {
    let ca = dir.join("mock-cert.pem");
    let mut command = Command::new(&bins.mock);
    command
        .args(["--bench", "--listen", "127.0.0.1:0", "--workers"])
        .arg(workers.to_string())
        .args(["--tls-listen", "127.0.0.1:0", "--tls-cert-out"])
        .arg(&ca)
        .arg("--write-auth-dir")
        .arg(dir.join("logins"))
        .arg("--accounts")
        .arg(logins.max(1).to_string());
    let mut mock = Child::spawn("the mock upstream", &mut command, &dir.join("mock.log"))?;
    let plain = printed_addr(&mut mock, "listening on ", "http://").await?;
    let tls = printed_addr(&mut mock, "listening with TLS on ", "https://").await?;
    Ok(Mock {
        child: mock,
        plain,
        tls: Upstream::Tls { addr: tls, ca },
    })
}

/// The address the mock printed after `marker`, as `{scheme}addr`.
async fn printed_addr(mock: &mut Child, marker: &str, scheme: &str) -> anyhow::Result<SocketAddr> {
    let url = mock.wait_for_line(marker, STARTUP).await?;
    url.strip_prefix(scheme)
        .and_then(|addr| addr.parse().ok())
        .with_context(|| format!("the mock printed an unexpected address {url:?}"))
}

/// A relay serving from `accounts` of the mock's accounts.
pub struct Relay {
    pub child: Child,
    pub addr: SocketAddr,
    pub key: String,
    /// How it was started, to start it again ([`Relay::restart`]).
    bin: PathBuf,
    env: Vec<(&'static str, String)>,
    data: PathBuf,
}

impl Relay {
    /// The same relay — data, accounts, key, settings — as a new process on new ports, logging
    /// to `log` in its data dir. The old one is stopped first: the two would share the store.
    pub async fn restart(self, log: &str) -> anyhow::Result<Relay> {
        let Relay {
            child,
            key,
            bin,
            env,
            data,
            ..
        } = self;
        drop(child);
        let (child, addr) = serve(&bin, &env, &data.join(log)).await?;
        Ok(Relay {
            child,
            addr,
            key,
            bin,
            env,
            data,
        })
    }
}

/// A relay with `accounts` accounts reaching `mock`, its audit trail on or off (`audit`);
/// `websocket`: its key may hold [`WS_PER_KEY`] WebSocket connections.
pub async fn start_relay(
    bins: &Binaries,
    dir: &Path,
    accounts: usize,
    mock: &Upstream,
    audit: bool,
    websocket: bool,
) -> anyhow::Result<Relay> {
    start_relay_named(bins, dir, "relay", accounts, mock, audit, websocket).await
}

/// [`start_relay`] with its data in a folder whose name starts with `name` (two relays of the
/// same kind running at once each have their own).
pub async fn start_relay_named(
    bins: &Binaries,
    dir: &Path,
    name: &str,
    accounts: usize,
    mock: &Upstream,
    audit: bool,
    websocket: bool,
) -> anyhow::Result<Relay> {
    let (upstream, ca_file, mut name) = match mock {
        Upstream::Plain(addr) => (format!("http://{addr}"), None, format!("{name}-{accounts}")),
        Upstream::Tls { addr, ca } => (
            format!("https://{addr}"),
            Some(ca.display().to_string()),
            format!("{name}-{accounts}-tls"),
        ),
    };
    if !audit {
        name.push_str("-audit-off");
    }
    let data = dir.join(name);
    std::fs::create_dir_all(&data)?;
    let mut env = vec![
        (
            "STORE__PATH",
            data.join("codex-relay.db").display().to_string(),
        ),
        ("UPSTREAM__BASE_URL", upstream.clone()),
        // Logins and refreshes take the same way to the mock as the answers.
        ("OAUTH__ISSUER", upstream),
        ("LIMITS__DEFAULT_KEY_RPM", "0".to_owned()),
        ("LIMITS__MAX_IN_FLIGHT", MAX_IN_FLIGHT.to_string()),
    ];
    if let Some(ca_file) = ca_file {
        env.push(("UPSTREAM__CA_FILE", ca_file));
    }
    if !audit {
        env.push(("AUDIT__ENABLED", "false".to_owned()));
    }
    // Only then: a relay built before WebSockets refuses a setting it does not know.
    if websocket {
        let per_key = WS_PER_KEY.to_string();
        env.push(("WEBSOCKET__MAX_CONNECTIONS_PER_KEY", per_key));
    }
    let relay = |args: &[&str]| command(&bins.relay, &env, args);
    for i in 1..=accounts {
        let login = dir.join("logins").join(format!("acct-bench-{i}.json"));
        let login = login.display().to_string();
        run(relay(&[
            "account",
            "import",
            &login,
            "--label",
            &format!("bench-{i}"),
        ]))?;
    }
    // No --rpm: with limits.default_key_rpm = 0 the key has no rate at all.
    let key = run(relay(&["key", "create", "--name", "bench"]))?;
    let (child, addr) = serve(&bins.relay, &env, &data.join("relay.log")).await?;
    Ok(Relay {
        child,
        addr,
        key,
        bin: bins.relay.clone(),
        env,
        data,
    })
}

/// `codex-relay ARGS` with the settings in `env`, and no config file but its defaults.
fn command(bin: &Path, env: &[(&str, String)], args: &[&str]) -> Command {
    let mut command = Command::new(bin);
    command.args(args).env_remove("CODEX_RELAY_CONFIG");
    for (key, value) in env {
        command.env(format!("CODEX_RELAY__{key}"), value);
    }
    command
}

/// `codex-relay serve` on free ports, once ready; answers where it serves the API.
async fn serve(
    bin: &Path,
    env: &[(&'static str, String)],
    log: &Path,
) -> anyhow::Result<(Child, SocketAddr)> {
    let [listen, admin] = procs::free_addrs()?;
    let mut env = env.to_vec();
    env.push(("SERVER__LISTEN", listen.to_string()));
    env.push(("ADMIN__LISTEN", admin.to_string()));
    let mut child = Child::spawn("the relay", &mut command(bin, &env, &["serve"]), log)?;
    wait_ready(&mut child, admin).await?;
    Ok((child, listen))
}

/// Runs a relay command; answers what it printed on stdout.
fn run(mut command: Command) -> anyhow::Result<String> {
    let output = command.output().context("cannot run codex-relay")?;
    if !output.status.success() {
        bail!(
            "{:?} failed: {}",
            command.get_args().collect::<Vec<_>>(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Waits until the admin plane's `/readyz` answers 200 (the pool is loaded and can serve).
async fn wait_ready(child: &mut Child, admin: SocketAddr) -> anyhow::Result<()> {
    let readyz = Call {
        method: Method::GET,
        path: "/readyz".to_owned(),
        headers: Vec::new(),
        body: Bytes::new(),
        stream: false,
    };
    let deadline = Instant::now() + STARTUP;
    loop {
        let ready = match Conn::open(&Endpoint::plain(admin)).await {
            Ok(mut conn) => conn.send(&readyz).await.is_ok(),
            Err(_) => false,
        };
        if ready {
            return Ok(());
        }
        child.check_alive()?;
        if Instant::now() > deadline {
            bail!(
                "the relay was not ready within {STARTUP:?}; see {}",
                child.log().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
