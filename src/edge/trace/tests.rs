use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

use super::*;

/// The specification's own example.
const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

#[test]
fn a_valid_traceparent_gives_its_trace_span_and_flags() {
    let parent = parse_traceparent(VALID).unwrap();
    assert_eq!(parent.trace_id.to_string(), TRACE);
    assert_eq!(parent.trace_id.to_hex(), TRACE);
    assert_eq!(parent.span_id.to_string(), SPAN);
    assert_eq!(parent.flags, 0x01);
    let unsampled = parse_traceparent(&VALID.replace("-01", "-00")).unwrap();
    assert_eq!(unsampled.flags, 0x00);
}

#[test]
fn unknown_flags_are_dropped_and_known_ones_kept() {
    let parent = parse_traceparent(&format!("00-{TRACE}-{SPAN}-ff")).unwrap();
    assert_eq!(parent.flags, 0x03);
}

#[test]
fn each_malformed_traceparent_is_refused() {
    let cases = [
        ("empty", String::new()),
        ("too short", VALID[..54].to_owned()),
        ("version 00 with more", format!("{VALID}-00")),
        ("trailing text", format!("{VALID}x")),
        ("trace id not hex", VALID.replace("4bf9", "4bg9")),
        ("uppercase hex", VALID.replace("4bf9", "4BF9")),
        ("span id not hex", VALID.replace("00f0", "00z0")),
        ("flags not hex", format!("00-{TRACE}-{SPAN}-0x")),
        (
            "all-zero trace id",
            format!("00-{}-{SPAN}-01", "0".repeat(32)),
        ),
        (
            "all-zero span id",
            format!("00-{TRACE}-{}-01", "0".repeat(16)),
        ),
        ("version ff", format!("ff-{TRACE}-{SPAN}-01")),
        ("version not hex", format!("0g-{TRACE}-{SPAN}-01")),
        ("a dash missing", VALID.replacen('-', "_", 1)),
        ("fields shifted", format!("00-{TRACE}0-{}-01", &SPAN[1..])),
        ("spaces inside", format!("00- {}-{SPAN}-01", &TRACE[1..])),
    ];
    for (case, value) in cases {
        assert_eq!(parse_traceparent(&value), None, "{case}: {value}");
    }
}

#[test]
fn a_later_version_is_read_for_its_version_00_part() {
    let bare = format!("01-{TRACE}-{SPAN}-01");
    let extended = format!("cc-{TRACE}-{SPAN}-01-what-the-future-will-be-like");
    for value in [bare, extended] {
        let parent = parse_traceparent(&value).unwrap();
        assert_eq!(parent.trace_id.to_string(), TRACE, "{value}");
        assert_eq!(parent.span_id.to_string(), SPAN, "{value}");
    }
    // What follows the flags must be a new field.
    assert_eq!(parse_traceparent(&format!("01-{TRACE}-{SPAN}-01x")), None);
}

#[test]
fn the_relay_span_is_new_and_its_parent_is_the_clients() {
    let trace = Trace::of(&headers(&[("traceparent", VALID)]));
    assert_eq!(trace.trace_id.to_string(), TRACE);
    assert_eq!(trace.parent_span_id.unwrap().to_string(), SPAN);
    assert_ne!(trace.span_id.to_string(), SPAN);
    assert_eq!(trace.flags, 0x01);
}

#[test]
fn without_a_valid_traceparent_a_new_random_trace_starts() {
    let none = Trace::of(&HeaderMap::new());
    let other = Trace::of(&HeaderMap::new());
    let repeated = Trace::of(&headers(&[("traceparent", VALID), ("traceparent", VALID)]));
    for trace in [&none, &other, &repeated] {
        assert_ne!(trace.trace_id.to_string(), TRACE);
        assert_eq!(trace.parent_span_id, None);
        assert_eq!(trace.flags, 0x03, "sampled, with a random trace id");
        assert_eq!(trace.trace_id.to_string().len(), 32);
        assert_eq!(trace.span_id.to_string().len(), 16);
    }
    assert_ne!(none.trace_id, other.trace_id);
    assert_ne!(none.span_id, other.span_id);
}

#[test]
fn traceresponse_names_the_trace_and_the_relay_span() {
    let trace = Trace::of(&headers(&[("traceparent", VALID)]));
    let value = trace.traceresponse().unwrap();
    let expected = format!("00-{TRACE}-{}-01", trace.span_id);
    assert_eq!(value.to_str().unwrap(), expected);
    let started = Trace::start();
    let value = started.traceresponse().unwrap();
    let text = value.to_str().unwrap();
    assert_eq!(parse_traceparent(text).unwrap().trace_id, started.trace_id);
    assert!(text.ends_with("-03"), "{text}");
}

#[test]
fn tracestate_is_kept_with_a_valid_traceparent_only() {
    let state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    let kept = Trace::of(&headers(&[("traceparent", VALID), ("tracestate", state)]));
    assert_eq!(kept.tracestate.as_deref(), Some(state));
    let orphan = Trace::of(&headers(&[("tracestate", state)]));
    assert_eq!(orphan.tracestate, None);
    let split = Trace::of(&headers(&[
        ("traceparent", VALID),
        ("tracestate", "congo=t61rcWkgMzE"),
        ("tracestate", "rojo=00f067aa0ba902b7"),
    ]));
    assert_eq!(split.tracestate.as_deref(), Some(state));
}

#[test]
fn a_tracestate_too_long_or_malformed_is_dropped_whole() {
    let long = (0..40)
        .map(|i| format!("k{i}=v"))
        .collect::<Vec<_>>()
        .join(",");
    let huge = format!("a={}", "x".repeat(600));
    for state in [
        long.as_str(),
        huge.as_str(),
        "novalue",
        "Upper=1",
        "a=b=c",
        "a=",
        "a=ok,=x",
    ] {
        let trace = Trace::of(&headers(&[("traceparent", VALID), ("tracestate", state)]));
        assert_eq!(trace.tracestate, None, "{state}");
        assert_eq!(trace.trace_id.to_string(), TRACE, "the parent still counts");
    }
}
