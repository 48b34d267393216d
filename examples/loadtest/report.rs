//! The one table: a row per measurement, a column per target, every proxy's cell with its ratio
//! to the direct connection over the protocol the proxy speaks to the mock (first-byte and
//! first-token latencies as a difference instead: what the proxy adds), then the machine and
//! the settings; the same numbers as JSON on request. The WebSocket rows and fields are built in
//! `report_ws.rs`.

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::load::{HeldResult, LoopResult};
use super::report_ws;
use super::targets::Kind;
use super::websocket;

/// Everything measured on one target.
pub struct Measured {
    pub name: String,
    pub kind: Kind,
    /// (users, result) per fast-stream concurrency.
    pub fast: Vec<(usize, LoopResult)>,
    pub models: LoopResult,
    pub paced: LoopResult,
    pub held: Vec<Held>,
    /// None where the WebSocket phases did not run.
    pub websocket: Option<websocket::Phases>,
}

pub enum Held {
    Ran(HeldResult),
    Skipped { streams: usize, reason: String },
}

impl Measured {
    /// Failed requests and streams in every phase.
    pub fn errors(&self) -> u64 {
        let loops = self
            .fast
            .iter()
            .map(|(_, r)| r)
            .chain([&self.models, &self.paced]);
        let held = self.held.iter().map(|h| match h {
            Held::Ran(r) => r.errors as u64,
            Held::Skipped { .. } => 0,
        });
        let websocket = self.websocket.as_ref().map_or(0, report_ws::errors);
        loops.map(|r| r.errors).chain(held).sum::<u64>() + websocket
    }

    /// "phase: N errors, first: …" for every phase that had errors, and why a phase was skipped.
    pub fn error_notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let mut note = |phase: String, errors: u64, first: &Option<String>| {
            if errors > 0 {
                let first = first.as_deref().unwrap_or("-");
                notes.push(format!(
                    "{}: {phase}: {errors} errors, first: {first}",
                    self.name
                ));
            }
        };
        for (users, r) in &self.fast {
            note(format!("fast c={users}"), r.errors, &r.first_error);
        }
        note(
            "models".to_owned(),
            self.models.errors,
            &self.models.first_error,
        );
        note(
            "paced".to_owned(),
            self.paced.errors,
            &self.paced.first_error,
        );
        for held in &self.held {
            if let Held::Ran(r) = held {
                note(
                    format!("held {}", r.streams),
                    r.errors as u64,
                    &r.first_error,
                );
            }
        }
        for held in &self.held {
            if let Held::Skipped { streams, reason } = held {
                notes.push(format!("{}: held {streams}: skipped, {reason}", self.name));
            }
        }
        if let Some(websocket) = &self.websocket {
            notes.extend(report_ws::error_notes(&self.name, websocket));
        }
        notes
    }
}

/// A row: its label, then one cell per target.
pub struct Row(pub String, pub Vec<String>);

/// A value in the direct column, and how a proxy's value is shown against it.
pub enum Compare {
    Ratio,
    Delta,
    None,
}

/// Names of the phases whose shape the data does not carry, e.g. `paced 20x5ms c=16`.
pub struct Labels {
    pub models: String,
    pub paced: String,
}

/// The table as text, followed by `notes` (machine, settings, errors).
pub fn table(all: &[Measured], labels: &Labels, notes: &[String]) -> String {
    use Compare::{Delta, Ratio};
    let Some(direct) = all.first() else {
        return String::new();
    };
    let mut rows = Vec::new();
    let mut row = |label: String, compare, show, value: &dyn Fn(&Measured) -> Option<f64>| {
        rows.push(numeric(all, label, value, compare, show));
    };
    for (i, (users, _)) in direct.fast.iter().enumerate() {
        let fast = format!("fast c={users}");
        let at = |m: &Measured, q| fast_at(m, i).map(|r| quantile(&r.total, q));
        row(format!("{fast}: requests/s"), Ratio, per_second, &|m| {
            fast_at(m, i).map(LoopResult::rate)
        });
        row(format!("{fast}: p50"), Ratio, millis, &|m| at(m, 0.5));
        row(format!("{fast}: p99"), Ratio, millis, &|m| at(m, 0.99));
    }
    // A proxy that forwards bytes as they are answers as many as the mock; more means it
    // rewrote something (the relay re-encodes a usage missing fields SDKs require).
    row("fast: bytes per answer".to_owned(), Ratio, bytes, &|m| {
        fast_at(m, 0).map(LoopResult::bytes_per_answer)
    });
    if let Some((users, _)) = direct.fast.last() {
        row(
            format!("fast c={users}: proxy CPU/request"),
            Compare::None,
            micros,
            &|m| last_fast(m).and_then(|r| r.cpu_us_per_request),
        );
        row(
            format!("fast c={users}: of it the audit writer"),
            Compare::None,
            micros,
            &|m| last_fast(m).and_then(|r| r.audit_writer_us_per_request),
        );
        row(
            format!("fast c={users}: mock CPU (cores)"),
            Compare::None,
            cores,
            &|m| last_fast(m).map(|r| r.mock_cores),
        );
    }
    let models = &labels.models;
    row(format!("{models}: requests/s"), Ratio, per_second, &|m| {
        Some(m.models.rate())
    });
    row(format!("{models}: p50"), Ratio, millis, &|m| {
        Some(quantile(&m.models.total, 0.5))
    });
    row(format!("{models}: p99"), Ratio, millis, &|m| {
        Some(quantile(&m.models.total, 0.99))
    });
    let paced = &labels.paced;
    row(format!("{paced}: first byte p50"), Delta, millis, &|m| {
        Some(quantile(&m.paced.first_byte, 0.5))
    });
    row(format!("{paced}: first token p50"), Delta, millis, &|m| {
        Some(quantile(&m.paced.first_token, 0.5))
    });
    row(format!("{paced}: total p50"), Ratio, millis, &|m| {
        Some(quantile(&m.paced.total, 0.5))
    });
    row(
        format!("{paced}: proxy CPU/request"),
        Compare::None,
        micros,
        &|m| m.paced.cpu_us_per_request,
    );
    row(
        format!("{paced}: of it the audit writer"),
        Compare::None,
        micros,
        &|m| m.paced.audit_writer_us_per_request,
    );
    for (i, held) in direct.held.iter().enumerate() {
        let n = match held {
            Held::Ran(r) => r.streams,
            Held::Skipped { streams, .. } => *streams,
        };
        rows.extend(held_rows(all, i, n));
    }
    rows.extend(report_ws::rows(all));
    let errors = all.iter().map(|m| m.errors().to_string()).collect();
    rows.push(Row("errors (all phases)".to_owned(), errors));
    render(all, &rows, notes)
}

pub fn fast_at(m: &Measured, i: usize) -> Option<&LoopResult> {
    m.fast.get(i).map(|(_, r)| r)
}

fn last_fast(m: &Measured) -> Option<&LoopResult> {
    m.fast.last().map(|(_, r)| r)
}

fn held_rows(all: &[Measured], i: usize, n: usize) -> Vec<Row> {
    let cells = |show: &dyn Fn(&HeldResult) -> String| -> Vec<String> {
        all.iter()
            .map(|m| match m.held.get(i) {
                Some(Held::Ran(r)) => show(r),
                Some(Held::Skipped { .. }) => "skipped".to_owned(),
                None => "-".to_owned(),
            })
            .collect()
    };
    let proxy = |m: &HeldResult, text: String| {
        if m.peak_rss_kb == 0 {
            "-".to_owned()
        } else {
            text
        }
    };
    vec![
        Row(
            format!("held {n}: errors, peak open"),
            cells(&|r| format!("{} err, {} open", r.errors, r.peak_open)),
        ),
        Row(
            format!("held {n}: proxy RSS peak"),
            cells(&|r| {
                proxy(
                    r,
                    format!(
                        "{:.1} MB (idle {:.1})",
                        mb(r.peak_rss_kb),
                        mb(r.idle_rss_kb)
                    ),
                )
            }),
        ),
        Row(
            format!("held {n}: proxy memory/stream"),
            cells(&|r| {
                let per =
                    r.peak_rss_kb.saturating_sub(r.idle_rss_kb) as f64 / r.streams.max(1) as f64;
                proxy(r, format!("{per:.1} KB"))
            }),
        ),
        Row(
            format!("held {n}: stream p99"),
            cells(&|r| millis(quantile(&r.total, 0.99))),
        ),
    ]
}

/// A row of numbers: a direct value alone, every other with its comparison to its baseline.
pub fn numeric(
    all: &[Measured],
    label: String,
    value: &dyn Fn(&Measured) -> Option<f64>,
    compare: Compare,
    show: fn(f64) -> String,
) -> Row {
    let cells = all
        .iter()
        .map(|m| {
            let baseline = m.kind.baseline();
            // A baseline's own column shows its value alone.
            let base = all
                .iter()
                .find(|b| b.kind == baseline && baseline != m.kind)
                .and_then(value);
            match (value(m), base) {
                (None, _) => "-".to_owned(),
                (Some(v), Some(b)) => match compare {
                    Compare::Ratio if b > 0.0 => format!("{} ({:.2}x)", show(v), v / b),
                    Compare::Delta => format!("{} ({:+.2})", show(v), (v - b) / 1000.0),
                    _ => show(v),
                },
                (Some(v), None) => show(v),
            }
        })
        .collect();
    Row(label, cells)
}

fn render(all: &[Measured], rows: &[Row], notes: &[String]) -> String {
    let mut header = vec!["".to_owned()];
    header.extend(all.iter().map(|m| m.name.clone()));
    let mut lines: Vec<Vec<String>> = vec![header];
    for Row(label, cells) in rows {
        let mut line = vec![label.clone()];
        line.extend(cells.iter().cloned());
        lines.push(line);
    }
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            lines
                .iter()
                .filter_map(|l| l.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (n, line) in lines.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                let width = widths.get(c).copied().unwrap_or(0);
                if c == 0 {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if n == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * columns.saturating_sub(1)));
            out.push('\n');
        }
    }
    for note in notes {
        out.push_str(note);
        out.push('\n');
    }
    out
}

/// A quantile of a latency histogram, in microseconds (0 when nothing was recorded).
pub fn quantile(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64
    }
}

pub fn per_second(v: f64) -> String {
    format!("{v:.0}/s")
}

pub fn millis(us: f64) -> String {
    format!("{:.2} ms", us / 1000.0)
}

pub fn micros(us: f64) -> String {
    format!("{us:.0} µs")
}

fn bytes(v: f64) -> String {
    format!("{v:.0} B")
}

fn cores(v: f64) -> String {
    format!("{v:.2}")
}

pub fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// The machine and the settings under the table, from the settings of the JSON.
pub fn settings_notes(s: &Value) -> Vec<String> {
    vec![
        format!(
            "machine: {} cores, {}, kernel {}; {} build; open files {}",
            s["cores"],
            text(&s["cpu"]),
            text(&s["kernel"]),
            text(&s["profile"]),
            s["open_files"]
        ),
        format!(
            "load: one keep-alive connection per user, {} s measured after {} s warm-up; fast = \
             58 events, ~18 KB at once; paced = `{}`; held = `{}`, {} connects at once",
            s["window_s"],
            s["warmup_s"],
            text(&s["paced"]),
            text(&s["held"]),
            s["held_parallel"]
        ),
        format!(
            "processes: mock {} workers; relay: one worker per core, info log (its access log) \
             to a file; nginx: worker_processes auto, proxy_buffering off, access log on; \
             request body {} bytes",
            s["mock_workers"], s["request_body_bytes"]
        ),
        "(x) = ratio to direct; (+) = ms added to direct; a relay reaching the mock over h2 is \
         compared with direct (h2), the others with direct over HTTP/1.1; proxy CPU = its \
         user+system time over the window per completed request; direct's mock CPU shows how \
         busy the mock was"
            .to_owned(),
        report_ws::settings_note(s),
    ]
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

/// A closed loop as JSON (over a WebSocket, a request is a turn).
pub fn loop_json(r: &LoopResult) -> Value {
    json!({
        "requests": r.requests, "errors": r.errors, "seconds": r.secs,
        "requests_per_second": r.rate(), "bytes_per_answer": r.bytes_per_answer(),
        "p50_us": quantile(&r.total, 0.5), "p99_us": quantile(&r.total, 0.99),
        "first_byte_p50_us": quantile(&r.first_byte, 0.5),
        "first_token_p50_us": quantile(&r.first_token, 0.5),
        "proxy_cpu_us_per_request": r.cpu_us_per_request,
        "audit_writer_cpu_us_per_request": r.audit_writer_us_per_request,
        "proxy_cpu_us_per_request_by_thread": r.threads_us_per_request,
        "mock_cpu_cores": r.mock_cores,
        "first_error": r.first_error,
    })
}

/// The measurements as JSON, with the settings.
pub fn json(all: &[Measured], settings: Value) -> Value {
    let targets: Vec<Value> = all
        .iter()
        .map(|m| {
            let fast: Vec<Value> = m
                .fast
                .iter()
                .map(|(users, r)| json!({"users": users, "result": loop_json(r)}))
                .collect();
            let held: Vec<Value> = m
                .held
                .iter()
                .map(|h| match h {
                    Held::Ran(r) => json!({
                        "streams": r.streams, "errors": r.errors, "peak_open": r.peak_open,
                        "idle_rss_kb": r.idle_rss_kb, "peak_rss_kb": r.peak_rss_kb,
                        "p99_us": quantile(&r.total, 0.99), "first_error": r.first_error,
                    }),
                    Held::Skipped { streams, reason } => {
                        json!({"streams": streams, "skipped": reason})
                    }
                })
                .collect();
            let (kind, accounts, upstream) = match m.kind {
                Kind::Direct { h2 } => ("direct", None, if h2 { "h2" } else { "http/1.1" }),
                Kind::Nginx => ("nginx", None, "http/1.1"),
                Kind::Relay { accounts, h2, .. } => {
                    ("relay", Some(accounts), if h2 { "h2" } else { "http/1.1" })
                }
            };
            let audit = match m.kind {
                Kind::Relay { audit, .. } => Some(audit),
                Kind::Direct { .. } | Kind::Nginx => None,
            };
            json!({
                "target": m.name, "kind": kind, "accounts": accounts, "upstream": upstream, "audit": audit, "fast": fast, "models": loop_json(&m.models),
                "paced": loop_json(&m.paced), "held": held,
                "websocket": m.websocket.as_ref().map(report_ws::json),
            })
        })
        .collect();
    json!({"settings": settings, "targets": targets})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::histogram;

    /// A loop that answered `requests` in one second.
    fn answered(requests: u64) -> LoopResult {
        let empty = histogram().unwrap_or_else(|e| panic!("{e}"));
        LoopResult {
            requests,
            errors: 0,
            first_error: None,
            secs: 1.0,
            total: empty.clone(),
            first_byte: empty.clone(),
            first_token: empty,
            cpu_us_per_request: None,
            audit_writer_us_per_request: None,
            threads_us_per_request: Default::default(),
            mock_cores: 0.0,
            bytes: 0,
        }
    }

    fn measured(name: &str, kind: Kind, rate: u64) -> Measured {
        Measured {
            name: name.to_owned(),
            kind,
            fast: Vec::new(),
            models: answered(rate),
            paced: answered(0),
            held: Vec::new(),
            websocket: None,
        }
    }

    #[test]
    fn a_relay_over_h2_is_compared_with_direct_over_h2_and_the_rest_with_direct() {
        let all = [
            measured("direct", Kind::Direct { h2: false }, 1000),
            measured("nginx", Kind::Nginx, 500),
            measured(
                "relay",
                Kind::Relay {
                    accounts: 1,
                    h2: false,
                    audit: true,
                },
                250,
            ),
            measured("direct (h2)", Kind::Direct { h2: true }, 400),
            measured(
                "relay (h2)",
                Kind::Relay {
                    accounts: 1,
                    h2: true,
                    audit: true,
                },
                200,
            ),
        ];
        let row = numeric(
            &all,
            "rate".to_owned(),
            &|m| Some(m.models.rate()),
            Compare::Ratio,
            |v| format!("{v:.0}"),
        );
        assert_eq!(
            row.1,
            ["1000", "500 (0.50x)", "250 (0.25x)", "400", "200 (0.50x)"]
        );
    }
}
