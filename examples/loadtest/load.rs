//! The two ways load is driven:
//!
//! * a closed loop: `users` virtual users, each on its own connection (an HTTP keep-alive one, or
//!   a WebSocket: see [`Client`]), sending one request after the other for a warm-up and then a
//!   measured window; only answers that end inside the window count, and the CPU time of the
//!   measured processes is taken at the window's edges;
//! * held streams: `n` connections with one long stream each, opened with bounded parallelism
//!   (so no accept queue overflows), all open at once at the peak; the resident memory of the
//!   measured processes is sampled every 50 ms meanwhile.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::client::{Call, Conn, Endpoint, Timing};
use super::procs;

/// Longest a single answer may take beyond the end of its phase before it counts as failed.
const ANSWER_GRACE: Duration = Duration::from_secs(30);
/// How often resident memory is sampled during held streams.
pub const RSS_EVERY: Duration = Duration::from_millis(50);

/// Latencies in microseconds, from 1 µs to 10 minutes, 3 significant digits.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 600_000_000, 3)?)
}

/// What a closed loop measured.
pub struct LoopResult {
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub secs: f64,
    pub total: Histogram<u64>,
    pub first_byte: Histogram<u64>,
    pub first_token: Histogram<u64>,
    /// CPU of the measured processes (the proxy), per answer.
    pub cpu_us_per_request: Option<f64>,
    /// Of it, the relay's audit writer thread's, per answer (none without that thread).
    pub audit_writer_us_per_request: Option<f64>,
    /// Of it, each thread name's (threads of one name summed), per answer.
    pub threads_us_per_request: BTreeMap<String, f64>,
    /// CPU of the mock during the window, in cores.
    pub mock_cores: f64,
    /// Body bytes of the answers counted.
    pub bytes: u64,
}

impl LoopResult {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.secs.max(f64::EPSILON)
    }

    /// Mean body bytes of an answer (0 when none was counted).
    pub fn bytes_per_answer(&self) -> f64 {
        self.bytes as f64 / self.requests.max(1) as f64
    }
}

/// Who is measured: the proxy's processes (none for a direct connection) and the mock's.
#[derive(Clone)]
pub struct Watched {
    pub proxy: Vec<u32>,
    pub mock: u32,
}

/// A connection that answers one request at a time, and what is sent over it: the same closed
/// loop drives an HTTP call over keep-alive connections and a turn over WebSockets.
pub trait Client: Send + Sync + 'static {
    type Conn: Send;
    fn open(&self) -> impl Future<Output = anyhow::Result<Self::Conn>> + Send;
    /// Sends the request and reads its answer to the end.
    fn send(&self, conn: &mut Self::Conn) -> impl Future<Output = anyhow::Result<Timing>> + Send;
}

/// `call` over HTTP keep-alive connections to `endpoint`.
pub struct Http {
    pub endpoint: Endpoint,
    pub call: Call,
}

impl Client for Http {
    type Conn = Conn;

    async fn open(&self) -> anyhow::Result<Conn> {
        Conn::open(&self.endpoint).await
    }

    async fn send(&self, conn: &mut Conn) -> anyhow::Result<Timing> {
        conn.send(&self.call).await
    }
}

/// Runs `clients(user)` back to back from `users` users: `warmup`, then `window` measured.
pub async fn closed_loop<C: Client>(
    clients: impl Fn(usize) -> C,
    users: usize,
    warmup: Duration,
    window: Duration,
    watched: &Watched,
) -> anyhow::Result<LoopResult> {
    let empty = histogram()?;
    let warm_end = Instant::now() + warmup;
    let end = warm_end + window;
    let mut tasks = JoinSet::new();
    for user in 0..users {
        tasks.spawn(user_loop(clients(user), warm_end, end, empty.clone()));
    }
    tokio::time::sleep_until(warm_end.into()).await;
    let (proxy0, mock0, t0) = (cpu(&watched.proxy), cpu(&[watched.mock]), Instant::now());
    let threads0 = procs::cpu_by_thread(&watched.proxy);
    tokio::time::sleep_until(end.into()).await;
    let (proxy1, mock1, t1) = (cpu(&watched.proxy), cpu(&[watched.mock]), Instant::now());
    let threads1 = procs::cpu_by_thread(&watched.proxy);
    let secs = (t1 - t0).as_secs_f64();
    let mut result = LoopResult {
        requests: 0,
        errors: 0,
        first_error: None,
        secs: window.as_secs_f64(),
        total: empty.clone(),
        first_byte: empty.clone(),
        first_token: empty,
        cpu_us_per_request: None,
        audit_writer_us_per_request: None,
        threads_us_per_request: BTreeMap::new(),
        mock_cores: mock1.saturating_sub(mock0) as f64 / 1e6 / secs.max(f64::EPSILON),
        bytes: 0,
    };
    while let Some(user) = tasks.join_next().await {
        let Ok(user) = user else {
            result.errors += 1;
            continue;
        };
        result.requests += user.requests;
        result.bytes += user.bytes;
        result.errors += user.errors;
        result.first_error = result.first_error.or(user.first_error);
        // Same bounds on both sides, so adding cannot fail.
        let _ = result.total.add(&user.total);
        let _ = result.first_byte.add(&user.first_byte);
        let _ = result.first_token.add(&user.first_token);
    }
    if !watched.proxy.is_empty() && result.requests > 0 {
        let per_request = |micros: u64| micros as f64 / result.requests as f64;
        result.cpu_us_per_request = Some(per_request(proxy1.saturating_sub(proxy0)));
        // Threads alive at both edges (a thread started or ended in the window is left out).
        result.threads_us_per_request = threads1
            .iter()
            .filter_map(|(name, after)| {
                let before = threads0.get(name)?;
                Some((name.clone(), per_request(after.saturating_sub(*before))))
            })
            .collect();
        result.audit_writer_us_per_request =
            result.threads_us_per_request.get(AUDIT_WRITER).copied();
    }
    Ok(result)
}

/// The relay's audit writer thread (`audit::Audit::start`).
pub const AUDIT_WRITER: &str = "audit-writer";

fn cpu(pids: &[u32]) -> u64 {
    if pids.is_empty() {
        0
    } else {
        procs::cpu_micros(pids)
    }
}

struct UserResult {
    requests: u64,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
    total: Histogram<u64>,
    first_byte: Histogram<u64>,
    first_token: Histogram<u64>,
}

async fn user_loop<C: Client>(
    client: C,
    warm_end: Instant,
    end: Instant,
    empty: Histogram<u64>,
) -> UserResult {
    let mut result = UserResult {
        requests: 0,
        bytes: 0,
        errors: 0,
        first_error: None,
        total: empty.clone(),
        first_byte: empty.clone(),
        first_token: empty,
    };
    let mut conn: Option<C::Conn> = None;
    while Instant::now() < end {
        let limit = (end + ANSWER_GRACE).saturating_duration_since(Instant::now());
        let Some(outcome) = attempt(&client, &mut conn, limit).await else {
            continue;
        };
        let done = Instant::now();
        let counted = done >= warm_end && done <= end;
        match outcome {
            Ok(timing) if counted => result.record(&timing),
            Ok(_) => {}
            Err(e) if counted => {
                result.errors += 1;
                result.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
            Err(_) => {}
        }
    }
    result
}

/// One step of a user on `conn`: with a connection open, `client`'s request sent over it and its
/// answer read (at most `limit`); with none, one opened — `None`, nothing was sent. An error
/// closes the connection (a refused connect after a pause, so it does not spin).
pub async fn attempt<C: Client>(
    client: &C,
    conn: &mut Option<C::Conn>,
    limit: Duration,
) -> Option<anyhow::Result<Timing>> {
    let outcome = match conn.as_mut() {
        Some(open) => tokio::time::timeout(limit, client.send(open))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {limit:?}"))),
        None => match client.open().await {
            Ok(open) => {
                *conn = Some(open);
                return None;
            }
            Err(e) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Err(e)
            }
        },
    };
    if outcome.is_err() {
        *conn = None;
    }
    Some(outcome)
}

impl UserResult {
    fn record(&mut self, timing: &Timing) {
        self.requests += 1;
        self.bytes += timing.bytes;
        self.total.saturating_record(micros(timing.total));
        if let Some(at) = timing.first_byte {
            self.first_byte.saturating_record(micros(at));
        }
        if let Some(at) = timing.first_token {
            self.first_token.saturating_record(micros(at));
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// What a phase of held streams measured.
pub struct HeldResult {
    pub streams: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub peak_open: usize,
    /// Resident memory of the proxy before the phase and at its peak, in KB (0 when direct).
    pub idle_rss_kb: u64,
    pub peak_rss_kb: u64,
    pub total: Histogram<u64>,
}

/// Opens `n` streams, `parallel` connects at a time, and waits for all of them to end.
pub async fn held(
    endpoint: &Endpoint,
    calls: impl Fn(usize) -> Call,
    n: usize,
    parallel: usize,
    limit: Duration,
    proxy: &[u32],
) -> anyhow::Result<HeldResult> {
    let total = histogram()?;
    let idle_rss_kb = procs::rss_kb(proxy);
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn(sample_rss(proxy.to_vec(), Arc::clone(&sampling)));
    let gate = Arc::new(Semaphore::new(parallel.max(1)));
    let open = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let (call, gate) = (calls(i), Arc::clone(&gate));
        let (open, peak) = (Arc::clone(&open), Arc::clone(&peak));
        let endpoint = endpoint.clone();
        let one = async move {
            let answer = {
                let _permit = gate.acquire_owned().await?;
                Conn::open(&endpoint).await?.start(&call).await?
            };
            let now_open = open.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now_open, Ordering::SeqCst);
            let timing = answer.finish().await;
            open.fetch_sub(1, Ordering::SeqCst);
            timing
        };
        tasks.spawn(async move {
            tokio::time::timeout(limit, one)
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("no end within {limit:?}")))
        });
    }
    let mut result = HeldResult {
        streams: n,
        errors: 0,
        first_error: None,
        peak_open: 0,
        idle_rss_kb,
        peak_rss_kb: 0,
        total,
    };
    while let Some(outcome) = tasks.join_next().await {
        match outcome {
            Ok(Ok(timing)) => result.total.saturating_record(micros(timing.total)),
            Ok(Err(e)) => {
                result.errors += 1;
                result.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
            Err(e) => {
                result.errors += 1;
                result.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    sampling.store(false, Ordering::SeqCst);
    result.peak_rss_kb = sampler.await.unwrap_or(0);
    result.peak_open = peak.load(Ordering::SeqCst);
    Ok(result)
}

/// The largest resident memory seen until `running` turns false.
pub async fn sample_rss(pids: Vec<u32>, running: Arc<AtomicBool>) -> u64 {
    let mut peak = 0;
    while running.load(Ordering::SeqCst) {
        peak = peak.max(procs::rss_kb(&pids));
        tokio::time::sleep(RSS_EVERY).await;
    }
    peak.max(procs::rss_kb(&pids))
}
