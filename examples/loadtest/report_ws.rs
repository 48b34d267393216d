//! The WebSocket rows of the table and fields of the JSON: turns per second against direct over
//! WebSocket and against the SSE fast phase at the same concurrency on the same target, the
//! proxy's CPU per turn beside its CPU per SSE request, and its memory per open connection beside
//! its memory per held SSE stream.

use serde_json::{json, Value};

use super::load::LoopResult;
use super::report::{
    fast_at, loop_json, mb, micros, millis, numeric, per_second, quantile, Compare, Held, Measured,
    Row,
};
use super::websocket::{self, Phases};

/// The rows, after the SSE ones; none when no target ran the WebSocket phases.
pub fn rows(all: &[Measured]) -> Vec<Row> {
    let Some(shape) = all.iter().find_map(|m| m.websocket.as_ref()) else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for (i, &(users, _)) in shape.fast.iter().enumerate() {
        let fast = format!("ws fast c={users}");
        rows.push(numeric(
            all,
            format!("{fast}: turns/s"),
            &|m| ws_fast(m, i).map(LoopResult::rate),
            Compare::Ratio,
            per_second,
        ));
        rows.push(numeric(
            all,
            format!("{fast}: p50"),
            &|m| ws_fast(m, i).map(|r| quantile(&r.total, 0.5)),
            Compare::Ratio,
            millis,
        ));
        rows.push(Row(
            format!("{fast}: turns/s to SSE requests/s"),
            cells(all, |m| {
                let (ws, sse) = (ws_fast(m, i)?.rate(), sse_fast(m, users)?.rate());
                (sse > 0.0).then(|| format!("{:.2}x", ws / sse))
            }),
        ));
    }
    if let Some(&(users, _)) = shape.fast.last() {
        let last = shape.fast.len() - 1;
        rows.push(Row(
            format!("ws fast c={users}: proxy CPU/turn (SSE)"),
            cells(all, |m| {
                let ws = ws_fast(m, last)?.cpu_us_per_request?;
                let sse = sse_fast(m, users).and_then(|r| r.cpu_us_per_request);
                Some(beside(micros(ws), sse.map(|us| format!("{us:.0}"))))
            }),
        ));
    }
    rows.extend(held_rows(all, shape.held.connections()));
    rows
}

/// The held phase's result on `m`, or what its cell says instead.
fn ran(m: &Measured) -> Result<&websocket::HeldResult, &'static str> {
    match m.websocket.as_ref().map(|w| &w.held) {
        Some(websocket::Held::Ran(r)) => Ok(r),
        Some(websocket::Held::Skipped { .. }) => Err("skipped"),
        None => Err("-"),
    }
}

fn held_rows(all: &[Measured], n: usize) -> [Row; 3] {
    let held = |show: &dyn Fn(&Measured, &websocket::HeldResult) -> Option<String>| {
        all.iter()
            .map(|m| match ran(m) {
                Ok(r) => show(m, r).unwrap_or_else(|| "-".to_owned()),
                Err(why) => why.to_owned(),
            })
            .collect()
    };
    [
        Row(
            format!("ws held {n}: errors, open"),
            held(&|_, r| Some(format!("{} err, {} open", r.errors, r.open))),
        ),
        Row(
            format!("ws held {n}: proxy RSS open"),
            held(&|_, r| {
                let (open, idle, peak) = (mb(r.open_rss_kb), mb(r.idle_rss_kb), mb(r.peak_rss_kb));
                (r.open_rss_kb > 0)
                    .then(|| format!("{open:.1} MB (idle {idle:.1}, peak {peak:.1})"))
            }),
        ),
        Row(
            format!("ws held {n}: proxy memory/connection (SSE)"),
            held(&|m, r| {
                let sse = sse_held_kb_per_stream(m, n).map(|kb| format!("{kb:.1}"));
                Some(beside(format!("{:.1} KB", r.kb_per_connection()?), sse))
            }),
        ),
    ]
}

/// A cell per target: "-" where there is nothing to show.
fn cells(all: &[Measured], show: impl Fn(&Measured) -> Option<String>) -> Vec<String> {
    all.iter()
        .map(|m| show(m).unwrap_or_else(|| "-".to_owned()))
        .collect()
}

/// `value`, with the same figure over SSE in parentheses when there is one.
fn beside(value: String, sse: Option<String>) -> String {
    match sse {
        Some(sse) => format!("{value} (SSE {sse})"),
        None => value,
    }
}

fn ws_fast(m: &Measured, i: usize) -> Option<&LoopResult> {
    m.websocket.as_ref()?.fast.get(i).map(|(_, r)| r)
}

/// The SSE fast phase at `users` on the same target.
fn sse_fast(m: &Measured, users: usize) -> Option<&LoopResult> {
    let i = m.fast.iter().position(|(u, _)| *u == users)?;
    fast_at(m, i)
}

/// The proxy's memory per stream in the held SSE phase of `streams` on the same target.
fn sse_held_kb_per_stream(m: &Measured, streams: usize) -> Option<f64> {
    m.held.iter().find_map(|held| match held {
        Held::Ran(r) if r.streams == streams && r.peak_rss_kb > 0 => {
            Some(r.peak_rss_kb.saturating_sub(r.idle_rss_kb) as f64 / streams.max(1) as f64)
        }
        _ => None,
    })
}

/// Failed turns and connections.
pub fn errors(phases: &Phases) -> u64 {
    let fast: u64 = phases.fast.iter().map(|(_, r)| r.errors).sum();
    match &phases.held {
        websocket::Held::Ran(r) => fast + r.errors as u64,
        websocket::Held::Skipped { .. } => fast,
    }
}

/// "ws phase: N errors, first: …" for every phase that had errors, and why one was skipped.
pub fn error_notes(target: &str, phases: &Phases) -> Vec<String> {
    let first = |first: &Option<String>| first.as_deref().unwrap_or("-").to_owned();
    let mut notes: Vec<String> = phases
        .fast
        .iter()
        .filter(|(_, r)| r.errors > 0)
        .map(|(users, r)| {
            let (errors, first) = (r.errors, first(&r.first_error));
            format!("{target}: ws fast c={users}: {errors} errors, first: {first}")
        })
        .collect();
    match &phases.held {
        websocket::Held::Ran(r) if r.errors > 0 => notes.push(format!(
            "{target}: ws held {}: {} errors, first: {}",
            r.connections,
            r.errors,
            first(&r.first_error)
        )),
        websocket::Held::Ran(_) => {}
        websocket::Held::Skipped {
            connections,
            reason,
        } => notes.push(format!(
            "{target}: ws held {connections}: skipped, {reason}"
        )),
    }
    notes
}

/// How the WebSocket phases ran, under the table.
pub fn settings_note(s: &Value) -> String {
    if s["websocket"] != Value::Bool(true) {
        return "websocket: left out (--no-websocket)".to_owned();
    }
    format!(
        "websocket (direct and relays over HTTP/1.1, each relay restarted after its SSE phases: \
         its allocator keeps what they freed): one connection per user, kept for all its turns \
         (`bench fast`, a frame per event); ws held = {} connections, {} opening at once, \
         each left idle after one turn; memory/connection = (RSS with all open, read after {} \
         ms idle − RSS before) / connections; (SSE …) = the same figure over SSE on the same \
         target (for held streams: from the peak RSS)",
        s["ws_held"], s["held_parallel"], s["ws_settle_ms"],
    )
}

/// The WebSocket phases as JSON (over a WebSocket, a request of a loop is a turn).
pub fn json(phases: &Phases) -> Value {
    let fast: Vec<Value> = phases
        .fast
        .iter()
        .map(|(users, r)| json!({"users": users, "result": loop_json(r)}))
        .collect();
    let held = match &phases.held {
        websocket::Held::Ran(r) => json!({
            "connections": r.connections, "errors": r.errors, "open": r.open,
            "idle_rss_kb": r.idle_rss_kb, "open_rss_kb": r.open_rss_kb,
            "peak_rss_kb": r.peak_rss_kb, "kb_per_connection": r.kb_per_connection(),
            "first_error": r.first_error,
        }),
        websocket::Held::Skipped {
            connections,
            reason,
        } => json!({"connections": connections, "skipped": reason}),
    };
    json!({"fast": fast, "held": held})
}
