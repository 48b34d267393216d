use std::time::{Duration, Instant};

use actix_web::body::{to_bytes, BodySize, MessageBody};
use bytes::Bytes;

use super::{warm, Outgoing, Warmup, CONN_KEEP_ALIVE, CONN_LIFETIME};

fn leading(outgoing: Outgoing) -> super::LeadingBody {
    match outgoing {
        Outgoing::Leading(body) => body,
        Outgoing::Plain(_) => panic!("expected this request to lead"),
    }
}

fn plain(outgoing: Outgoing) -> Bytes {
    match outgoing {
        Outgoing::Plain(body) => body,
        Outgoing::Leading(_) => panic!("expected this request to go as is"),
    }
}

/// Starts `outgoing` for a follower on this thread; its handle says when it has gone on.
fn follow(warmup: &Warmup) -> actix_web::rt::task::JoinHandle<Outgoing> {
    let warmup = warmup.clone();
    actix_web::rt::spawn(async move { warmup.outgoing(Bytes::from_static(b"{}")).await })
}

async fn settle() {
    for _ in 0..10 {
        actix_web::rt::task::yield_now().await;
    }
}

#[actix_web::test]
async fn followers_wait_for_the_leader_and_go_as_is_once_its_body_is_read() {
    let warmup = Warmup::new(Duration::from_secs(30));
    let leader = leading(warmup.outgoing(Bytes::from_static(b"{\"a\":1}")).await);
    assert_eq!(leader.size(), BodySize::Sized(7));
    let followers: Vec<_> = (0..3).map(|_| follow(&warmup)).collect();
    settle().await;
    assert!(followers.iter().all(|f| !f.is_finished()));

    // awc reads the body once the connection is ready (for HTTP/2: back in the pool).
    assert_eq!(to_bytes(leader).await.unwrap(), "{\"a\":1}");
    for follower in followers {
        assert_eq!(plain(follower.await.unwrap()), "{}");
    }
    // The worker stays warm for the next request.
    assert_eq!(plain(warmup.outgoing(Bytes::from_static(b"x")).await), "x");
}

#[actix_web::test]
async fn a_leader_that_fails_before_its_body_is_read_hands_the_lead_to_one_follower() {
    let warmup = Warmup::new(Duration::from_secs(30));
    let leader = leading(warmup.outgoing(Bytes::from_static(b"{}")).await);
    let followers: Vec<_> = (0..3).map(|_| follow(&warmup)).collect();
    settle().await;
    drop(leader);
    settle().await;

    let finished: Vec<_> = followers.into_iter().filter(|f| f.is_finished()).collect();
    assert_eq!(
        finished.len(),
        1,
        "one follower takes the lead, the others wait for it"
    );
    let new_leader = leading(finished.into_iter().next().unwrap().await.unwrap());
    drop(new_leader);
}

#[actix_web::test]
async fn a_follower_waits_no_longer_than_its_patience() {
    let warmup = Warmup::new(Duration::from_millis(50));
    let _leader = leading(warmup.outgoing(Bytes::from_static(b"{}")).await);
    let started = Instant::now();
    // A follower that waited on past its patience would hang here: fail it instead.
    let outgoing = warmup.outgoing(Bytes::from_static(b"{}"));
    let outgoing = actix_web::rt::time::timeout(Duration::from_secs(10), outgoing)
        .await
        .expect("the follower gave up waiting");
    assert_eq!(plain(outgoing), "{}");
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[actix_web::test]
async fn a_failed_request_makes_the_next_one_lead() {
    let warmup = Warmup::new(Duration::from_secs(30));
    let leader = leading(warmup.outgoing(Bytes::from_static(b"{}")).await);
    to_bytes(leader).await.unwrap();
    plain(warmup.outgoing(Bytes::from_static(b"{}")).await);

    warmup.lost();
    drop(leading(warmup.outgoing(Bytes::from_static(b"{}")).await));
}

#[actix_web::test]
async fn an_empty_body_goes_as_is_and_leaves_the_state_alone() {
    let warmup = Warmup::new(Duration::from_secs(30));
    assert_eq!(plain(warmup.outgoing(Bytes::new()).await), "");
    drop(leading(warmup.outgoing(Bytes::from_static(b"{}")).await));
}

#[test]
fn a_connection_counts_as_pooled_until_the_pool_would_drop_it() {
    let opened = Instant::now();
    let later = |d: Duration| opened + d;
    assert!(warm(later(Duration::ZERO), opened, opened));
    // Idle past the keep-alive: gone.
    let idle = later(CONN_KEEP_ALIVE);
    assert!(!warm(idle, opened, opened));
    // In use all along, but past its lifetime: gone.
    let used = later(CONN_LIFETIME - Duration::from_secs(1));
    assert!(warm(used, opened, used));
    assert!(!warm(later(CONN_LIFETIME), opened, used));
}
