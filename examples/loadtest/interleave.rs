//! The fast stream against the relay with its audit trail on and the one with it off,
//! interleaved: one closed loop whose users send each request to the relay the moment names,
//! the two relays taking turns every `slice`. The rounds in turns (`audit_ab.rs`) measure each
//! relay for seconds at a time, seconds apart; on a shared machine whose speed drifts by more
//! than the trail costs from one second to the next, a round's two phases see different
//! machines. Here both relays sample every stretch of the run, a slice apart.
//!
//! The run is cut into cycles of four half-slices — on, off, off, on — so each relay serves one
//! whole slice a cycle (the trail-on relay's split across the cycle's two ends). An answer counts
//! for the relay that gave it, in the cycle it ended in. The requests still in flight when a
//! relay's turn ends are answered by it after the other's turn has begun; they and their CPU land
//! in the same cycle for the trail-off relay, whose turn is in the middle, and for the trail-on
//! relay the ones its turn carries into the next cycle match those the last cycle carried into
//! this one. Each cycle's ratio is thus one relay against the other over the same seconds; the
//! median of the cycles comes with a 95% interval, and beside it the ratio of the whole run.
//!
//! CPU is each relay's threads' own account (`schedstat`), read at every cycle's edge. The
//! relay not serving sits idle but for what it still owes: the trail-on relay's writer may
//! write its last batch (at most `audit.flush_interval_ms` late) during the other's turn, and
//! that CPU is counted for it, where it belongs.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::audit_ab::{median, median_interval_grouped, ratio, Interval};
use super::load::{attempt, Http, AUDIT_WRITER};
use super::procs;
use super::targets::Target;

/// Longest a single answer may take before it counts as failed.
const ANSWER_LIMIT: Duration = Duration::from_secs(30);

/// Which relay serves during half-slice `tick` of a cycle of four: on, off, off, on.
fn serving(tick: usize) -> Side {
    match tick % 4 {
        0 | 3 => Side::On,
        _ => Side::Off,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    On = 0,
    Off = 1,
}

/// One relay's part of a cycle.
#[derive(Clone, Copy, Default, Debug, PartialEq)]
pub struct Share {
    pub requests: u64,
    pub cpu_us: u64,
    pub writer_us: u64,
}

impl Share {
    fn per_request(&self, micros: u64) -> Option<f64> {
        (self.requests > 0).then(|| micros as f64 / self.requests as f64)
    }

    fn cpu_per_request(&self) -> Option<f64> {
        self.per_request(self.cpu_us)
    }

    /// CPU a request without the writer's thread.
    fn rest_per_request(&self) -> Option<f64> {
        self.per_request(self.cpu_us.saturating_sub(self.writer_us))
    }

    fn add(self, other: Share) -> Share {
        Share {
            requests: self.requests + other.requests,
            cpu_us: self.cpu_us + other.cpu_us,
            writer_us: self.writer_us + other.writer_us,
        }
    }
}

/// One cycle: both relays over the same seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cycle {
    pub on: Share,
    pub off: Share,
}

impl Cycle {
    fn cpu_ratio(&self) -> Option<f64> {
        ratio(self.on.cpu_per_request(), self.off.cpu_per_request())
    }

    fn rest_ratio(&self) -> Option<f64> {
        ratio(self.on.rest_per_request(), self.off.cpu_per_request())
    }
}

/// What the interleaved loop measured, with one pair of relays or several in turn.
pub struct Interleaved {
    pub users: usize,
    pub slice: Duration,
    /// Each pair's cycles.
    pub pairs: Vec<Vec<Cycle>>,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// What the users and the clock share.
struct Shared {
    /// The half-slice now, counted from the loop's start.
    tick: AtomicUsize,
    stop: AtomicBool,
    /// Answers by cycle and relay (`[cycle][side]`), by when each ended.
    answers: Vec<[AtomicU64; 2]>,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// Runs `users` users against `on` and `off` in turns of `slice`: `warmup`, then `window`
/// measured (whole cycles of two slices; at least one of each).
pub async fn measure(
    on: &Target,
    off: &Target,
    users: usize,
    slice: Duration,
    warmup: Duration,
    window: Duration,
) -> Interleaved {
    let half = (slice / 2).max(Duration::from_millis(1));
    let cycle = half * 4;
    let whole = |span: Duration| span.as_nanos().div_ceil(cycle.as_nanos()) as usize;
    // At least one cycle of warm-up: the first edge is read while both relays are serving.
    let (warm_cycles, cycles) = (whole(warmup).max(1), whole(window).max(1));
    let total = warm_cycles + cycles;
    let shared = Arc::new(Shared {
        tick: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        answers: (0..total).map(|_| Default::default()).collect(),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
    });
    let mut tasks = JoinSet::new();
    for user in 0..users {
        let clients = [on, off].map(|target| Http {
            endpoint: target.endpoint.clone(),
            call: target.responses("bench fast", user),
        });
        tasks.spawn(user_loop(clients, Arc::clone(&shared), warm_cycles));
    }
    let pids = [on.proxy_pids.clone(), off.proxy_pids.clone()];
    let read = || pids.clone().map(|pids| Reading::of(&pids));
    let start = Instant::now();
    let mut edges = Vec::with_capacity(cycles + 1);
    for tick in 1..=total * 4 {
        tokio::time::sleep_until((start + half * tick as u32).into()).await;
        shared.tick.store(tick, Ordering::SeqCst);
        if tick >= warm_cycles * 4 && tick % 4 == 0 {
            edges.push(read());
        }
    }
    shared.stop.store(true, Ordering::SeqCst);
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            shared.errors.fetch_add(1, Ordering::SeqCst);
            record_error(&shared, e.to_string());
        }
    }
    let cycles = edges
        .windows(2)
        .enumerate()
        .map(|(i, pair)| {
            let answers = &shared.answers[warm_cycles + i];
            let share = |side: Side| {
                let (before, after) = (&pair[0][side as usize], &pair[1][side as usize]);
                Share {
                    requests: answers[side as usize].load(Ordering::SeqCst),
                    cpu_us: after.cpu_us.saturating_sub(before.cpu_us),
                    writer_us: after.writer_us.saturating_sub(before.writer_us),
                }
            };
            Cycle {
                on: share(Side::On),
                off: share(Side::Off),
            }
        })
        .collect();
    let first_error = shared
        .first_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    Interleaved {
        users,
        slice: half * 2,
        pairs: vec![cycles],
        errors: shared.errors.load(Ordering::SeqCst),
        first_error,
    }
}

/// A relay's CPU at a cycle's edge: all its threads', and its writer's.
#[derive(Clone, Copy)]
struct Reading {
    cpu_us: u64,
    writer_us: u64,
}

impl Reading {
    fn of(pids: &[u32]) -> Reading {
        let threads = procs::cpu_by_thread(pids);
        Reading {
            cpu_us: threads.values().sum(),
            writer_us: threads.get(AUDIT_WRITER).copied().unwrap_or(0),
        }
    }
}

/// One user: each request to the relay serving when it is sent, over that relay's connection,
/// counted for that relay in the cycle it ended in (errors only after the warm-up).
async fn user_loop(clients: [Http; 2], shared: Arc<Shared>, warm_cycles: usize) {
    let mut conns = [None, None];
    while !shared.stop.load(Ordering::SeqCst) {
        let side = serving(shared.tick.load(Ordering::SeqCst)) as usize;
        let Some(outcome) = attempt(&clients[side], &mut conns[side], ANSWER_LIMIT).await else {
            continue;
        };
        let cycle = shared.tick.load(Ordering::SeqCst) / 4;
        let counted = cycle >= warm_cycles && !shared.stop.load(Ordering::SeqCst);
        match outcome {
            Ok(_) if counted => {
                if let Some(answers) = shared.answers.get(cycle) {
                    answers[side].fetch_add(1, Ordering::SeqCst);
                }
            }
            Ok(_) => {}
            Err(e) if counted => {
                shared.errors.fetch_add(1, Ordering::SeqCst);
                record_error(&shared, format!("{e:#}"));
            }
            Err(_) => {}
        }
    }
}

fn record_error(shared: &Shared, error: String) {
    shared
        .first_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert(error);
}

impl Interleaved {
    /// Takes another pair's run in with this one's.
    pub fn add_pair(&mut self, run: Interleaved) {
        self.pairs.extend(run.pairs);
        self.errors += run.errors;
        self.first_error = self.first_error.take().or(run.first_error);
    }

    fn cycles(&self) -> impl Iterator<Item = &Cycle> {
        self.pairs.iter().flatten()
    }

    /// The median of the cycles' ratios; its interval draws pairs, then cycles within them.
    fn median_of(&self, ratio: fn(&Cycle) -> Option<f64>) -> Option<Interval> {
        let groups: Vec<Vec<f64>> = self
            .pairs
            .iter()
            .map(|cycles| cycles.iter().filter_map(ratio).collect())
            .collect();
        median_interval_grouped(&groups)
    }

    /// Each pair's median, as a percentage.
    fn pair_medians(&self) -> String {
        let medians: Vec<String> = self
            .pairs
            .iter()
            .map(|cycles| {
                median(cycles.iter().filter_map(Cycle::cpu_ratio).collect())
                    .map_or("-".into(), |v| format!("{:+.1}%", (v - 1.0) * 100.0))
            })
            .collect();
        medians.join(", ")
    }

    /// Both relays over the whole run.
    fn whole(&self) -> Cycle {
        let zero = Cycle {
            on: Share::default(),
            off: Share::default(),
        };
        self.cycles().fold(zero, |sum, c| Cycle {
            on: sum.on.add(c.on),
            off: sum.off.add(c.off),
        })
    }

    /// The section printed under the rounds.
    pub fn table(&self) -> String {
        let whole = self.whole();
        let micros = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} µs"));
        let percent =
            |v: Option<f64>| v.map_or("-".into(), |v| format!("{:+.1}%", (v - 1.0) * 100.0));
        let interval = |i: Option<Interval>| i.map_or("-".into(), Interval::percent);
        let share = whole
            .on
            .cpu_per_request()
            .zip(whole.on.per_request(whole.on.writer_us))
            .map_or("-".into(), |(cpu, writer)| {
                format!("{:.1}%", writer / cpu * 100.0)
            });
        format!(
            "\naudit trail on against off, the fast stream interleaved: the relays take turns every \
             {:.2} s, {} pairs of relays, {} cycles (on, off, off, on), c={}, {} errors{}\n  median \
             of the cycles on/off: fast CPU a request {}\n    each pair's: {}\n    the audit \
             writer's share {}, the rest {}\n  the whole run: on {} a request (the writer {}), \
             off {}: {}\n",
            self.slice.as_secs_f64(),
            self.pairs.len(),
            self.cycles().count(),
            self.users,
            self.errors,
            self.first_error
                .as_ref()
                .map_or(String::new(), |e| format!(" (the first: {e})")),
            interval(self.median_of(Cycle::cpu_ratio)),
            self.pair_medians(),
            share,
            interval(self.median_of(Cycle::rest_ratio)),
            micros(whole.on.cpu_per_request()),
            micros(whole.on.per_request(whole.on.writer_us)),
            micros(whole.off.cpu_per_request()),
            percent(whole.cpu_ratio()),
        )
    }

    pub fn json(&self) -> Value {
        let share = |s: &Share| {
            json!({
                "requests": s.requests, "cpu_us": s.cpu_us, "audit_writer_cpu_us": s.writer_us,
            })
        };
        let cycle = |c: &Cycle| json!({"on": share(&c.on), "off": share(&c.off), "cpu_ratio": c.cpu_ratio()});
        let pairs: Vec<Value> = self
            .pairs
            .iter()
            .map(|cycles| Value::from(cycles.iter().map(cycle).collect::<Vec<_>>()))
            .collect();
        let whole = self.whole();
        json!({
            "users": self.users, "slice_s": self.slice.as_secs_f64(), "errors": self.errors,
            "first_error": self.first_error, "pairs": pairs,
            "median_fast_cpu_ratio": self.median_of(Cycle::cpu_ratio).map(Interval::json),
            "median_fast_rest_ratio": self.median_of(Cycle::rest_ratio).map(Interval::json),
            "whole_fast_cpu_ratio": whole.cpu_ratio(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_relay_serves_one_slice_a_cycle_the_trail_on_relay_at_its_ends() {
        let sides: Vec<Side> = (0..8).map(serving).collect();
        use Side::{Off, On};
        assert_eq!(sides, [On, Off, Off, On, On, Off, Off, On]);
    }

    #[test]
    fn a_cycle_compares_cpu_per_request_with_and_without_the_writer() {
        let cycle = Cycle {
            on: Share {
                requests: 100,
                cpu_us: 10_500,
                writer_us: 300,
            },
            off: Share {
                requests: 200,
                cpu_us: 20_000,
                writer_us: 0,
            },
        };
        assert!((cycle.cpu_ratio().unwrap() - 1.05).abs() < 1e-9);
        assert!((cycle.rest_ratio().unwrap() - 1.02).abs() < 1e-9);
        let idle = Cycle {
            on: Share::default(),
            ..cycle
        };
        assert_eq!(idle.cpu_ratio(), None);
    }
}
