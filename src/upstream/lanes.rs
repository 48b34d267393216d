//! Keeps a worker's HTTP/2 connections to the upstream within the streams each may carry.
//!
//! An HTTP/2 server says how many streams a connection may carry at once
//! (`SETTINGS_MAX_CONCURRENT_STREAMS`: commonly 100 to 256). awc keeps one connection per host in
//! its pool and hands it to every request, and past that number h2 queues a new stream until one
//! of the open ones ends (or, on a connection too new to know the number, the server refuses it).
//! A Codex stream lasts minutes, so a request over the number waited that long — or until the
//! response timeout failed it and charged its account. awc cannot say how many streams a
//! connection carries, so the relay counts them: a lane is an awc client of its own (its own pool,
//! hence its own connection) and the number of streams it carries; a request takes the first lane
//! with room (`upstream.max_streams_per_connection`) and opens a new lane when every lane is full.
//! Each lane connects once when cold ([`Warmup`]).
//!
//! Over plain `http://` every request has a connection of its own anyway: one lane, uncounted.

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use bytes::Bytes;
use futures_util::Stream;

use super::warmup::Warmup;

/// A worker's lanes to the upstream.
pub struct Lanes {
    lanes: RefCell<Vec<Rc<Lane>>>,
    /// Streams a lane carries at most; `None`: one lane, uncounted.
    cap: Option<usize>,
    open: Box<dyn Fn() -> Lane>,
}

/// One client, its pool's connection, and the streams it carries.
pub struct Lane {
    pub http: awc::Client,
    pub warmup: Warmup,
    streams: Cell<usize>,
}

impl Lane {
    pub fn new(http: awc::Client, warmup: Warmup) -> Lane {
        Lane {
            http,
            warmup,
            streams: Cell::new(0),
        }
    }
}

/// One stream's place in a lane, given back when it is dropped.
pub struct Slot {
    lane: Rc<Lane>,
    counted: bool,
}

impl Lanes {
    /// `open` builds a lane; `cap`: streams a lane carries at most, `None` for one lane uncounted.
    pub fn new(cap: Option<usize>, open: impl Fn() -> Lane + 'static) -> Lanes {
        let first = Rc::new(open());
        Lanes {
            lanes: RefCell::new(vec![first]),
            cap: cap.map(|cap| cap.max(1)),
            open: Box::new(open),
        }
    }

    /// A place for one more stream: in the first lane with room, or in a new lane.
    pub fn take(&self) -> Slot {
        let Some(cap) = self.cap else {
            let lane = Rc::clone(&self.lanes.borrow()[0]);
            return Slot {
                lane,
                counted: false,
            };
        };
        let mut lanes = self.lanes.borrow_mut();
        let lane = match lanes.iter().find(|lane| lane.streams.get() < cap) {
            Some(lane) => Rc::clone(lane),
            None => {
                let lane = Rc::new((self.open)());
                lanes.push(Rc::clone(&lane));
                lane
            }
        };
        lane.streams.set(lane.streams.get() + 1);
        Slot {
            lane,
            counted: true,
        }
    }

    /// How many lanes there are, and how many streams each carries.
    #[cfg(test)]
    fn streams(&self) -> Vec<usize> {
        self.lanes
            .borrow()
            .iter()
            .map(|l| l.streams.get())
            .collect()
    }
}

impl Slot {
    pub fn lane(&self) -> &Lane {
        &self.lane
    }

    /// Ties the slot to an upstream body: the place is given back when the body ends or is
    /// dropped (which resets an HTTP/2 stream still open).
    pub fn hold(self, body: Payload) -> Payload {
        if !self.counted {
            return body;
        }
        let held: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(HeldBody {
            body,
            slot: Some(self),
        });
        Payload::from(held)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.counted {
            self.lane.streams.set(self.lane.streams.get() - 1);
        }
    }
}

/// An upstream body holding its stream's place until it ends.
struct HeldBody {
    body: Payload,
    slot: Option<Slot>,
}

impl Stream for HeldBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = Pin::new(&mut self.body).poll_next(cx);
        if matches!(next, Poll::Ready(None | Some(Err(_)))) {
            self.slot = None;
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;

    use super::*;

    fn lanes(cap: Option<usize>) -> Lanes {
        Lanes::new(cap, || {
            Lane::new(awc::Client::default(), Warmup::new(Duration::from_secs(1)))
        })
    }

    #[actix_web::test]
    async fn a_full_lane_sends_the_next_stream_to_a_new_one() {
        let lanes = lanes(Some(2));
        let slots: Vec<Slot> = (0..5).map(|_| lanes.take()).collect();
        assert_eq!(lanes.streams(), [2, 2, 1]);
        // Streams of one lane share its client (its pool, hence its connection).
        assert!(Rc::ptr_eq(&slots[0].lane, &slots[1].lane));
        assert!(!Rc::ptr_eq(&slots[1].lane, &slots[2].lane));
        drop(slots);
        assert_eq!(lanes.streams(), [0, 0, 0]);
    }

    #[actix_web::test]
    async fn a_place_freed_in_an_earlier_lane_is_taken_first() {
        let lanes = lanes(Some(2));
        let mut slots: Vec<Slot> = (0..4).map(|_| lanes.take()).collect();
        slots.swap_remove(0);
        let refill = lanes.take();
        assert_eq!(lanes.streams(), [2, 2]);
        assert!(Rc::ptr_eq(&refill.lane, &slots[1].lane));
    }

    #[actix_web::test]
    async fn over_plain_http_one_lane_carries_everything_uncounted() {
        let lanes = lanes(None);
        let slots: Vec<Slot> = (0..300).map(|_| lanes.take()).collect();
        assert_eq!(lanes.streams(), [0]);
        drop(slots);
        let body = lanes
            .take()
            .hold(Payload::from(Bytes::from_static(b"data")));
        assert!(
            matches!(body, Payload::H1 { .. }),
            "the body goes on as it came"
        );
    }

    #[actix_web::test]
    async fn a_body_gives_its_place_back_when_it_ends_or_is_dropped() {
        let lanes = lanes(Some(1));
        let mut ended = lanes
            .take()
            .hold(Payload::from(Bytes::from_static(b"event")));
        let dropped = lanes.take().hold(Payload::from(Bytes::from_static(b"x")));
        assert_eq!(lanes.streams(), [1, 1]);
        assert_eq!(ended.next().await.unwrap().unwrap(), "event");
        assert_eq!(lanes.streams(), [1, 1]);
        assert!(ended.next().await.is_none());
        assert_eq!(lanes.streams(), [0, 1]);
        drop(dropped);
        assert_eq!(lanes.streams(), [0, 0]);
    }
}
