use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use relay_actors::AccountId;

use super::*;

const HOUR: Duration = Duration::from_secs(3600);

fn response(key: &str, id: &str, item: &str, payload: usize, at: Instant) -> Remembered {
    Remembered {
        key: Arc::from(key),
        response_id: Some(id.to_owned()),
        forwarded: Bytes::from(vec![b' '; payload]),
        output: Events::copied(&[done_event(
            0,
            &format!(r#"{{"type":"message","id":"{item}"}}"#),
        )]),
        account: AccountId::from("acct-a"),
        at,
    }
}

/// A `response.output_item.done` event as the upstream sends it.
pub(crate) fn done_event(index: u64, item: &str) -> Bytes {
    Bytes::from(format!(
        "event: response.output_item.done\ndata: {{\"type\":\"response.output_item.done\",\"output_index\":{index},\"item\":{item}}}"
    ))
}

fn limits(max_bytes: usize) -> Limits {
    Limits {
        ttl: HOUR,
        max_bytes,
    }
}

#[test]
fn a_response_and_its_items_are_found_only_by_the_key_they_were_served_to() {
    let memory = ResponseMemory::default();
    let now = Instant::now();
    memory.remember(
        response("key-1", "resp_1", "msg_1", 10, now),
        limits(1 << 20),
    );
    assert!(memory.response("key-1", "resp_1", now, HOUR).is_some());
    let (_, item) = memory.item("key-1", "msg_1", now, HOUR).unwrap();
    assert_eq!(item.id.as_deref(), Some("msg_1"));
    assert!(memory.response("key-2", "resp_1", now, HOUR).is_none());
    assert!(memory.item("key-2", "msg_1", now, HOUR).is_none());
    // A response id is not an item, nor the other way round.
    assert!(memory.item("key-1", "resp_1", now, HOUR).is_none());
    assert!(memory.response("key-1", "msg_1", now, HOUR).is_none());
}

#[test]
fn past_its_budget_the_memory_forgets_the_oldest_and_does_not_grow() {
    let memory = ResponseMemory::default();
    let now = Instant::now();
    let budget = 64 * 1024;
    for n in 0..1000 {
        let id = format!("resp_{n}");
        memory.remember(
            response("k", &id, &format!("msg_{n}"), 1000, now),
            limits(budget),
        );
        let (bytes, _) = memory.usage();
        assert!(bytes <= budget, "{bytes} bytes after {n} responses");
    }
    let (bytes, entries) = memory.usage();
    assert!(bytes > budget * 9 / 10, "{bytes}");
    assert!((40..=60).contains(&entries), "{entries}");
    assert!(memory.response("k", "resp_999", now, HOUR).is_some());
    assert!(memory.response("k", "resp_0", now, HOUR).is_none());
    assert!(memory.item("k", "msg_0", now, HOUR).is_none());
}

#[test]
fn an_expired_response_is_not_returned_and_goes_at_the_next_change() {
    let memory = ResponseMemory::default();
    let then = Instant::now();
    memory.remember(
        response("k", "resp_old", "msg_old", 10, then),
        limits(1 << 20),
    );
    let later = then + HOUR;
    assert!(memory
        .response("k", "resp_old", later - Duration::from_secs(1), HOUR)
        .is_some());
    assert!(memory.response("k", "resp_old", later, HOUR).is_none());
    memory.remember(
        response("k", "resp_new", "msg_new", 10, later),
        limits(1 << 20),
    );
    assert_eq!(memory.usage().1, 1, "the expired response was dropped");
}

#[test]
fn a_sweep_forgets_expired_responses_without_a_new_one() {
    let memory = ResponseMemory::default();
    let then = Instant::now();
    memory.remember(response("k", "resp_1", "msg_1", 10, then), limits(1 << 20));
    memory.sweep(then + HOUR - Duration::from_secs(1));
    assert_eq!(memory.usage().1, 1);
    memory.sweep(then + HOUR);
    assert_eq!(memory.usage(), (0, 0));
}

#[test]
fn a_response_larger_than_the_budget_is_not_remembered() {
    let memory = ResponseMemory::default();
    let now = Instant::now();
    memory.remember(
        response("k", "resp_big", "msg_big", 1 << 21, now),
        limits(1 << 20),
    );
    assert_eq!(memory.usage(), (0, 0));
}

#[test]
fn an_id_served_again_leads_to_the_newest_and_survives_the_oldest_going() {
    let memory = ResponseMemory::default();
    let now = Instant::now();
    memory.remember(
        response("k", "resp_1", "msg_same", 10, now),
        limits(1 << 20),
    );
    memory.remember(
        response("k", "resp_2", "msg_same", 10, now),
        limits(1 << 20),
    );
    let (entry, _) = memory.item("k", "msg_same", now, HOUR).unwrap();
    assert_eq!(entry.response_id.as_deref(), Some("resp_2"));
    // Squeezing the budget to one entry drops resp_1 but not the item's newer slot.
    let one = memory.usage().0 / 2;
    memory.remember(response("k", "resp_3", "msg_3", 10, now), limits(one));
    assert!(memory.item("k", "msg_3", now, HOUR).is_some());
    assert!(memory.response("k", "resp_1", now, HOUR).is_none());
}

#[test]
fn an_answer_holds_its_events_apart_from_the_chunks_they_came_in_and_counts_what_it_holds() {
    let memory = ResponseMemory::default();
    let now = Instant::now();
    // The events as a stream's watcher keeps them: slices of the upstream's read, which is
    // much larger than they are.
    let first = done_event(0, r#"{"type":"reasoning","id":"rs_1"}"#);
    let second = done_event(1, r#"{"type":"message","id":"msg_1"}"#);
    let mut read = BytesMut::from(&b"event: response.output_text.delta\ndata: {}\n\n"[..]);
    let at = read.len();
    read.extend_from_slice(&first);
    read.extend_from_slice(&vec![b' '; 32 << 10]);
    read.extend_from_slice(&second);
    let read = read.freeze();
    let start = read.len() - second.len();
    let slices = [read.slice(at..at + first.len()), read.slice(start..)];
    assert_eq!((&slices[0], &slices[1]), (&first, &second));
    let forwarded = Bytes::from_static(br#"{"model":"m","input":[]}"#);
    let response = Remembered {
        key: Arc::from("k"),
        response_id: Some("resp_1".to_owned()),
        forwarded: forwarded.clone(),
        output: Events::copied(&slices),
        account: AccountId::from("acct-a"),
        at: now,
    };
    drop(slices);
    memory.remember(response, limits(1 << 20));
    // Nothing the memory holds keeps the read alive: it is this test's alone again.
    assert!(read.try_into_mut().is_ok());
    let entry = memory.response("k", "resp_1", now, HOUR).unwrap();
    let events: Vec<&[u8]> = entry.output.iter().collect();
    assert_eq!(events, [&first[..], &second[..]]);
    let ids: Vec<_> = entry.items().iter().map(|item| item.id.clone()).collect();
    assert_eq!(ids, [Some("rs_1".to_owned()), Some("msg_1".to_owned())]);
    // The body is shared with the request, not copied; counted with the events' own buffer.
    assert_eq!(entry.forwarded.as_ptr(), forwarded.as_ptr());
    let events_held = first.len() + second.len() + 2 * std::mem::size_of::<usize>();
    assert_eq!(entry.output.held(), events_held);
    let held = ENTRY_OVERHEAD + forwarded.len() + events_held;
    assert_eq!(memory.usage(), (held, 1));
}

#[test]
fn items_are_read_in_output_order_and_found_by_id_only_when_asked_for() {
    let memory = ResponseMemory::default();
    let now = Instant::now();
    let mut response = response("k", "resp_1", "msg_1", 10, now);
    // Streamed out of order; a `"msg_2"` inside another item's text is not that item.
    response.output = Events::copied(&[
        done_event(
            1,
            r#"{"type":"message","id":"msg_2","text":"see \"msg_1\""}"#,
        ),
        done_event(0, r#"{"type":"reasoning","id":"rs_1"}"#),
        Bytes::from_static(b"event: response.output_item.done\ndata: {not json"),
    ]);
    memory.remember(response, limits(1 << 20));
    let entry = memory.response("k", "resp_1", now, HOUR).unwrap();
    let ids: Vec<_> = entry
        .items()
        .into_iter()
        .map(|item| item.id.clone())
        .collect();
    assert_eq!(ids, [Some("rs_1".to_owned()), Some("msg_2".to_owned())]);
    let (_, item) = memory.item("k", "msg_2", now, HOUR).unwrap();
    assert!(item.json.contains(r#""id":"msg_2""#));
    assert!(memory.item("k", "msg_1", now, HOUR).is_none());
}

#[test]
fn forgetting_an_answer_never_wipes_bytes_a_request_still_reads() {
    let event = done_event(0, r#"{"type":"message","id":"msg_1"}"#);
    let mut response = response("k", "resp_1", "msg_1", 10, Instant::now());
    response.output = Events::copied(std::slice::from_ref(&event));
    let forwarded = response.forwarded.clone();
    drop(response);
    assert!(event.starts_with(b"event: response.output_item.done"));
    assert!(forwarded.iter().all(|b| *b == b' '));
}
