//! nginx as the yardstick of a plain streaming reverse proxy in front of the same mock:
//! `proxy_buffering off` (bytes go on as they come, as the relay does), HTTP/1.1 with keep-alive
//! to the upstream, one worker per core (`worker_processes auto`, as the relay runs one worker
//! per core), its access log on (the relay writes one too). It runs in the foreground with its
//! own prefix, config, pid and logs in the benchmark's temp dir.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::procs::{self, Child};

/// Upstream connections each worker keeps idle for reuse.
const UPSTREAM_KEEPALIVE: u32 = 1024;

/// `nginx` on PATH, if any.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
}

/// Starts nginx in front of `upstream` with `open_files` as each worker's file limit; answers
/// the nginx process, its processes (master and workers) and its address once every worker is
/// up and it accepts connections.
pub async fn start(
    bin: &Path,
    dir: &Path,
    upstream: SocketAddr,
    open_files: u64,
) -> anyhow::Result<(Child, Vec<u32>, SocketAddr)> {
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(prefix.join("logs"))?;
    let [listen] = procs::free_addrs()?;
    let conf = prefix.join("nginx.conf");
    std::fs::write(&conf, config(&prefix, listen, upstream, open_files))?;
    let mut command = Command::new(bin);
    command
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf)
        // Errors before the config is read would otherwise go to the system's log path.
        .arg("-e")
        .arg(prefix.join("logs").join("error.log"));
    let mut child =
        Child::spawn("nginx", &mut command, &prefix.join("nginx.out"))?.terminated_on_drop();
    // `worker_processes auto` starts one worker per core; the master listens before they exist.
    let workers = procs::machine().cores;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = procs::with_children(child.pid());
        if pids.len() > workers && tokio::net::TcpStream::connect(listen).await.is_ok() {
            return Ok((child, pids, listen));
        }
        child.check_alive()?;
        if Instant::now() > deadline {
            bail!(
                "nginx did not come up on {listen}; see {}",
                prefix.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn config(prefix: &Path, listen: SocketAddr, upstream: SocketAddr, open_files: u64) -> String {
    let p = prefix.display();
    // Running as root, nginx would hand its workers to `nobody`, who cannot enter the temp dir.
    let user = if nix::unistd::geteuid().is_root() {
        "user root;"
    } else {
        ""
    };
    let connections = open_files.saturating_sub(100).max(1024);
    format!(
        "{user}
worker_processes auto;
worker_rlimit_nofile {open_files};
daemon off;
pid {p}/nginx.pid;
error_log {p}/logs/error.log warn;
events {{
    worker_connections {connections};
    multi_accept on;
}}
http {{
    access_log {p}/logs/access.log combined buffer=64k;
    client_body_temp_path {p}/client_body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    keepalive_requests 1000000;
    upstream mock {{
        server {upstream};
        keepalive {UPSTREAM_KEEPALIVE};
        keepalive_requests 1000000;
    }}
    server {{
        listen {listen} backlog=4096;
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 300s;
        }}
    }}
}}
"
    )
}
