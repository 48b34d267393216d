//! What the audit trail costs, measured in turns. Two relays with the fewest accounts run side by
//! side, one with its trail on and one with it off (the one not measured sits idle), and the
//! fast and the paced phases alternate between them round after round: on then off, off then
//! on. Whatever drifts over a run (other work on the machine, the page cache, the clock of the
//! CPU) then falls on both alike, where the table's two columns measure each relay minutes apart
//! and differ from run to run by more than the trail costs. Each relay first gets a fast phase
//! that is not counted (a new process's first load costs more).
//!
//! Each median comes with a 95% interval (a bootstrap over the rounds): a round's ratio moves by
//! more than the trail costs, and the interval says how far the median of this many rounds can
//! be trusted. The fast stream's CPU is also shown without the writer's thread ("the rest"):
//! the request path's part of the trail, and whatever the writer costs the threads beside it.

use std::collections::BTreeSet;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::interleave::{self, Interleaved};
use super::load::{self, LoopResult};
use super::report::{loop_json, millis, quantile};
use super::targets::{Kind, Target};
use super::{phases, setup, Plan};

/// One round: each phase once against each relay.
pub struct Round {
    pub fast_on: LoopResult,
    pub fast_off: LoopResult,
    pub paced_on: LoopResult,
    pub paced_off: LoopResult,
}

/// Every round, and what its phases were; then the fast stream interleaved, when the plan has it.
pub struct AuditAb {
    pub fast_users: usize,
    pub paced_users: usize,
    pub rounds: Vec<Round>,
    pub interleaved: Option<Interleaved>,
}

/// Runs `plan.audit_rounds` rounds against two new relays reaching the mock at `upstream`.
pub async fn measure(
    plan: &Plan,
    bins: &setup::Binaries,
    dir: &Path,
    upstream: &setup::Upstream,
    mock: u32,
) -> anyhow::Result<AuditAb> {
    let accounts = plan.accounts.iter().copied().min().unwrap_or(1);
    let fast_users = plan.fast_users.iter().copied().max().unwrap_or(1);
    let relays = Relays {
        plan,
        bins,
        dir,
        upstream,
        mock,
        accounts,
        fast_users,
    };
    let pair = relays.start("ab").await?;
    let (on, off) = (&pair.on, &pair.off);
    let mut rounds = Vec::new();
    for round in 0..plan.audit_rounds {
        // The first round on then off, the next off then on: neither always follows the other.
        let first_on = round % 2 == 0;
        let (a, b) = if first_on { (on, off) } else { (off, on) };
        let (fast_a, fast_b) = (
            phase(a, plan, mock, fast_users, None).await?,
            phase(b, plan, mock, fast_users, None).await?,
        );
        let paced = plan.paced_marker();
        let (paced_a, paced_b) = (
            phase(a, plan, mock, plan.paced_users, Some(&paced)).await?,
            phase(b, plan, mock, plan.paced_users, Some(&paced)).await?,
        );
        let round = match first_on {
            true => Round {
                fast_on: fast_a,
                fast_off: fast_b,
                paced_on: paced_a,
                paced_off: paced_b,
            },
            false => Round {
                fast_on: fast_b,
                fast_off: fast_a,
                paced_on: paced_b,
                paced_off: paced_a,
            },
        };
        eprintln!("audit on/off, {}", round.summary());
        rounds.push(round);
    }
    let interleaved = match plan.audit_interleave.is_zero() {
        true => None,
        false => Some(relays.interleave(&pair).await?),
    };
    pair.check_alive()?;
    Ok(AuditAb {
        fast_users,
        paced_users: plan.paced_users,
        rounds,
        interleaved,
    })
}

/// What starting and measuring a pair of relays needs.
struct Relays<'a> {
    plan: &'a Plan,
    bins: &'a setup::Binaries,
    dir: &'a Path,
    upstream: &'a setup::Upstream,
    mock: u32,
    accounts: usize,
    fast_users: usize,
}

/// Two relays with the fewest accounts, the trail on and off.
struct Pair {
    relay_on: setup::Relay,
    relay_off: setup::Relay,
    on: Target,
    off: Target,
}

impl Pair {
    fn check_alive(mut self) -> anyhow::Result<()> {
        self.relay_on.child.check_alive()?;
        self.relay_off.child.check_alive()
    }
}

impl Relays<'_> {
    /// A new pair (its data in folders named from `name`), each given one fast phase not
    /// counted: a new process's first load grows its heap, faults its pages in and fills its
    /// caches.
    async fn start(&self, name: &str) -> anyhow::Result<Pair> {
        let start = |audit| {
            let (bins, dir, upstream) = (self.bins, self.dir, self.upstream);
            setup::start_relay_named(bins, dir, name, self.accounts, upstream, audit, false)
        };
        let relay_on = start(true).await?;
        let relay_off = start(false).await?;
        let target = |relay: &setup::Relay, audit| {
            let kind = Kind::Relay {
                accounts: self.accounts,
                h2: false,
                audit,
            };
            Target::relay(kind, relay.addr, &relay.key, relay.child.pid())
        };
        let (on, off) = (target(&relay_on, true), target(&relay_off, false));
        for relay in [&on, &off] {
            phase(relay, self.plan, self.mock, self.fast_users, None).await?;
        }
        Ok(Pair {
            relay_on,
            relay_off,
            on,
            off,
        })
    }

    /// The fast stream interleaved, its time split among `audit_pairs` pairs: `first` (the
    /// rounds' pair), then new ones, each stopped when its part is done. Two processes of one
    /// build differ by about a percent (both relays with the trail off measured so: +0.9%,
    /// -0.5%), more than one pair's interval says; the pairs' spread shows in the interval.
    async fn interleave(&self, first: &Pair) -> anyhow::Result<Interleaved> {
        let plan = self.plan;
        let pairs = plan.audit_pairs.max(1);
        let window = plan.audit_interleave / pairs as u32;
        let (slice, warmup, users) = (plan.audit_slice, plan.warmup, self.fast_users);
        let mut run =
            interleave::measure(&first.on, &first.off, users, slice, warmup, window).await;
        for n in 1..pairs {
            let pair = self.start(&format!("ab{n}")).await?;
            let (on, off) = (&pair.on, &pair.off);
            run.add_pair(interleave::measure(on, off, users, slice, warmup, window).await);
            pair.check_alive()?;
        }
        eprintln!("audit on/off, interleaved: {} errors", run.errors);
        Ok(run)
    }
}

/// The fast phase (no marker) or the paced one against `target`.
async fn phase(
    target: &Target,
    plan: &Plan,
    mock: u32,
    users: usize,
    paced: Option<&str>,
) -> anyhow::Result<LoopResult> {
    let marker = paced.unwrap_or("bench fast");
    let clients = |user| load::Http {
        endpoint: target.endpoint.clone(),
        call: target.responses(marker, user),
    };
    phases::closed(clients, users, plan, &phases::watched(target, mock)).await
}

impl Round {
    /// CPU per request with the trail on over off, in the fast phase.
    pub fn fast_cpu_ratio(&self) -> Option<f64> {
        ratio(
            self.fast_on.cpu_us_per_request,
            self.fast_off.cpu_us_per_request,
        )
    }

    /// The fast phase's CPU per request with the trail on, less its writer thread's, over off:
    /// what the trail costs the request path and the threads beside the writer.
    pub fn fast_rest_ratio(&self) -> Option<f64> {
        let on = &self.fast_on;
        ratio(
            Some(on.cpu_us_per_request? - on.audit_writer_us_per_request?),
            self.fast_off.cpu_us_per_request,
        )
    }

    pub fn paced_cpu_ratio(&self) -> Option<f64> {
        ratio(
            self.paced_on.cpu_us_per_request,
            self.paced_off.cpu_us_per_request,
        )
    }

    /// The paced phase's median first byte with the trail on over off.
    pub fn first_byte_ratio(&self) -> Option<f64> {
        ratio(
            Some(quantile(&self.paced_on.first_byte, 0.5)),
            Some(quantile(&self.paced_off.first_byte, 0.5)),
        )
    }

    fn summary(&self) -> String {
        let cpu = |r: &LoopResult| {
            r.cpu_us_per_request
                .map_or("-".into(), |v| format!("{v:.0}"))
        };
        let writer = |r: &LoopResult| {
            r.audit_writer_us_per_request
                .map_or("-".into(), |v| format!("{v:.1}"))
        };
        format!(
            "fast CPU {}/{} µs a request (writer {} µs), paced CPU {}/{} µs (writer {} µs), \
             paced first byte {}/{}",
            cpu(&self.fast_on),
            cpu(&self.fast_off),
            writer(&self.fast_on),
            cpu(&self.paced_on),
            cpu(&self.paced_off),
            writer(&self.paced_on),
            millis(quantile(&self.paced_on.first_byte, 0.5)),
            millis(quantile(&self.paced_off.first_byte, 0.5)),
        )
    }

    pub fn errors(&self) -> u64 {
        [
            &self.fast_on,
            &self.fast_off,
            &self.paced_on,
            &self.paced_off,
        ]
        .iter()
        .map(|r| r.errors)
        .sum()
    }
}

/// `on / off`, when both are known and `off` is not zero.
pub fn ratio(on: Option<f64>, off: Option<f64>) -> Option<f64> {
    match (on, off) {
        (Some(on), Some(off)) if off > 0.0 => Some(on / off),
        _ => None,
    }
}

/// The middle value (the mean of the two middle ones for an even count); none when empty.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The median of `values` and a 95% interval around it: the 2.5th and 97.5th percentiles of the
/// medians of resamples of the values (a bootstrap). Seeded: a run's report reads the same twice.
pub fn median_interval(values: &[f64]) -> Option<Interval> {
    median_interval_grouped(&[values.to_vec()])
}

/// [`median_interval`] of values measured in groups (the cycles of each pair of relays): each
/// resample draws groups, then values within each group drawn, so that how far the groups differ
/// widens the interval as much as how far the values within them do.
pub fn median_interval_grouped(groups: &[Vec<f64>]) -> Option<Interval> {
    const RESAMPLES: usize = 2000;
    let groups: Vec<&Vec<f64>> = groups.iter().filter(|g| !g.is_empty()).collect();
    let median_of_all = median(groups.iter().flat_map(|g| g.iter().copied()).collect())?;
    let mut rng = StdRng::seed_from_u64(2026);
    let mut medians: Vec<f64> = (0..RESAMPLES)
        .filter_map(|_| {
            let mut resample = Vec::new();
            for _ in 0..groups.len() {
                let group = groups[rng.gen_range(0..groups.len())];
                resample.extend((0..group.len()).map(|_| group[rng.gen_range(0..group.len())]));
            }
            median(resample)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    Some(Interval {
        median: median_of_all,
        low: medians[RESAMPLES * 25 / 1000],
        high: medians[RESAMPLES * 975 / 1000 - 1],
    })
}

/// A median and its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub median: f64,
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// A ratio's interval as percentages: `+3.1% (95%: -0.4% to +6.0%)`.
    pub fn percent(self) -> String {
        let p = |v: f64| format!("{:+.1}%", (v - 1.0) * 100.0);
        format!(
            "{} (95%: {} to {})",
            p(self.median),
            p(self.low),
            p(self.high)
        )
    }

    pub fn json(self) -> Value {
        json!({ "median": self.median, "low_95": self.low, "high_95": self.high })
    }
}

impl AuditAb {
    /// The median over the rounds of one of a round's ratios, with its interval.
    fn median_of(&self, ratio: fn(&Round) -> Option<f64>) -> Option<Interval> {
        median_interval(&self.rounds.iter().filter_map(ratio).collect::<Vec<_>>())
    }

    pub fn errors(&self) -> u64 {
        let interleaved = self.interleaved.as_ref().map_or(0, |run| run.errors);
        self.rounds.iter().map(Round::errors).sum::<u64>() + interleaved
    }

    /// The section printed under the table: a line per round, then the medians.
    pub fn table(&self) -> String {
        let mut out = format!(
            "\naudit trail on against off, the two relays measured in turns ({} rounds): fast \
             c={}, paced c={}\n",
            self.rounds.len(),
            self.fast_users,
            self.paced_users
        );
        let percent =
            |v: Option<f64>| v.map_or("-".into(), |v| format!("{:+.1}%", (v - 1.0) * 100.0));
        for (i, round) in self.rounds.iter().enumerate() {
            out.push_str(&format!(
                "  round {}: {}; on/off: fast CPU {}, paced CPU {}, paced first byte {}\n",
                i + 1,
                round.summary(),
                percent(round.fast_cpu_ratio()),
                percent(round.paced_cpu_ratio()),
                percent(round.first_byte_ratio()),
            ));
        }
        let writer = |f: fn(&Round) -> &LoopResult| {
            median(
                self.rounds
                    .iter()
                    .filter_map(|r| {
                        let r = f(r);
                        Some(r.audit_writer_us_per_request? / r.cpu_us_per_request?)
                    })
                    .collect(),
            )
        };
        let share = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.1}%", v * 100.0));
        let interval = |i: Option<Interval>| i.map_or("-".into(), Interval::percent);
        out.push_str(&self.fast_threads());
        out.push_str(&format!(
            "  median on/off:\n    fast CPU a request {}\n      the audit writer's share {}, \
             the rest {}\n    paced CPU a request {} (the writer's share {})\n    paced first \
             byte {}\n",
            interval(self.median_of(Round::fast_cpu_ratio)),
            share(writer(|r| &r.fast_on)),
            interval(self.median_of(Round::fast_rest_ratio)),
            interval(self.median_of(Round::paced_cpu_ratio)),
            share(writer(|r| &r.paced_on)),
            interval(self.median_of(Round::first_byte_ratio)),
        ));
        if let Some(run) = &self.interleaved {
            out.push_str(&run.table());
        }
        out
    }

    /// Where the fast phase's CPU per request differs, thread by thread: the median over the
    /// rounds of on less off, by thread name (the names of both relays' threads), largest first.
    fn fast_threads(&self) -> String {
        let names: BTreeSet<&String> = self
            .rounds
            .iter()
            .flat_map(|r| r.fast_on.threads_us_per_request.keys())
            .chain(
                self.rounds
                    .iter()
                    .flat_map(|r| r.fast_off.threads_us_per_request.keys()),
            )
            .collect();
        let mut differences: Vec<(&String, f64)> = names
            .into_iter()
            .filter_map(|name| {
                let of =
                    |r: &LoopResult| r.threads_us_per_request.get(name).copied().unwrap_or(0.0);
                let each = self.rounds.iter().map(|r| of(&r.fast_on) - of(&r.fast_off));
                Some((name, median(each.collect())?))
            })
            .collect();
        differences.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        let listed: Vec<String> = differences
            .iter()
            .map(|(name, us)| format!("{name} {us:+.1}"))
            .collect();
        format!(
            "  fast CPU a request, on less off by thread, median (µs): {}\n",
            listed.join(", ")
        )
    }

    pub fn json(&self) -> Value {
        let rounds: Vec<Value> = self
            .rounds
            .iter()
            .map(|r| {
                json!({
                    "fast_on": loop_json(&r.fast_on), "fast_off": loop_json(&r.fast_off),
                    "paced_on": loop_json(&r.paced_on), "paced_off": loop_json(&r.paced_off),
                    "fast_cpu_ratio": r.fast_cpu_ratio(), "paced_cpu_ratio": r.paced_cpu_ratio(),
                    "paced_first_byte_ratio": r.first_byte_ratio(),
                    "fast_rest_ratio": r.fast_rest_ratio(),
                })
            })
            .collect();
        json!({
            "fast_users": self.fast_users, "paced_users": self.paced_users, "rounds": rounds,
            "median_fast_cpu_ratio": self.median_of(Round::fast_cpu_ratio).map(Interval::json),
            "median_fast_rest_ratio": self.median_of(Round::fast_rest_ratio).map(Interval::json),
            "median_paced_cpu_ratio": self.median_of(Round::paced_cpu_ratio).map(Interval::json),
            "median_paced_first_byte_ratio":
                self.median_of(Round::first_byte_ratio).map(Interval::json),
            "interleaved": self.interleaved.as_ref().map(Interleaved::json),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{median, median_interval, median_interval_grouped};

    #[test]
    fn the_median_is_the_middle_value_or_the_mean_of_the_two_middle_ones() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn the_interval_holds_the_median_and_narrows_as_rounds_agree() {
        assert_eq!(median_interval(&[]), None);
        let one = median_interval(&[1.05]).unwrap();
        assert_eq!((one.median, one.low, one.high), (1.05, 1.05, 1.05));
        let spread = [0.90, 0.95, 1.00, 1.05, 1.10, 1.15, 1.20];
        let wide = median_interval(&spread).unwrap();
        assert_eq!(wide.median, 1.05);
        assert!(wide.low < 1.05 && 1.05 < wide.high, "{wide:?}");
        assert!(wide.low >= 0.90 && wide.high <= 1.20, "{wide:?}");
        let agreeing: Vec<f64> = spread.iter().map(|v| 1.0 + (v - 1.0) / 10.0).collect();
        let narrow = median_interval(&agreeing).unwrap();
        assert!(
            narrow.high - narrow.low < (wide.high - wide.low) / 5.0,
            "{narrow:?}"
        );
    }

    #[test]
    fn groups_that_disagree_widen_the_interval_beyond_their_pooled_values() {
        // Three pairs of relays, each tight around its own level.
        let around = |level: f64| -> Vec<f64> {
            (0..30).map(|i| level + f64::from(i % 5) * 0.001).collect()
        };
        let groups = [around(1.00), around(1.02), around(1.04)];
        let pooled: Vec<f64> = groups.iter().flatten().copied().collect();
        let flat = median_interval(&pooled).unwrap();
        let grouped = median_interval_grouped(&groups).unwrap();
        assert_eq!(grouped.median, flat.median);
        assert!(
            grouped.high - grouped.low > 5.0 * (flat.high - flat.low),
            "{grouped:?} against {flat:?}"
        );
        let one = around(1.02);
        assert_eq!(
            median_interval_grouped(&[one.clone(), vec![]]),
            median_interval(&one)
        );
        assert_eq!(median_interval_grouped(&[vec![]]), None);
    }
}
