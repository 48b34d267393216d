//! Keeps a worker's HTTP/2 connections to the upstream within the streams each may carry.
//!
//! An HTTP/2 server says how many streams a connection may carry at once
//! (`SETTINGS_MAX_CONCURRENT_STREAMS`: commonly 100 to 256). awc keeps one connection per host in
//! its pool and hands it to every request, and past that number h2 queues a new stream until one
//! of the open ones ends (or, on a connection too new to know the number, the server refuses it).
//! A Codex stream lasts minutes, so a request over the number waited that long — or until the
//! response timeout failed it and charged its account. awc cannot say how many streams a
//! connection carries, so the relay counts them: a [`Connection`] is an awc client of its own (its
//! own pool, hence one HTTP/2 connection) and the number of streams it carries; a request takes
//! the first connection with room (`upstream.max_streams_per_connection`) and opens a new one
//! when every connection is full. Each connection connects once when cold ([`Warmup`]).
//!
//! Over plain `http://` every request has a connection of its own anyway: one connection, uncounted.

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use bytes::Bytes;
use futures_util::Stream;

use super::warmup::Warmup;

/// A worker's connections to the upstream.
pub struct Connections {
    connections: RefCell<Vec<Rc<Connection>>>,
    /// Streams a connection carries at most; `None`: one connection, uncounted.
    cap: Option<usize>,
    open: Box<dyn Fn() -> Connection>,
}

/// One awc client, the HTTP/2 connection of its pool, and the streams it carries.
pub struct Connection {
    pub http: awc::Client,
    pub warmup: Warmup,
    streams: Cell<usize>,
}

impl Connection {
    pub fn new(http: awc::Client, warmup: Warmup) -> Connection {
        Connection {
            http,
            warmup,
            streams: Cell::new(0),
        }
    }
}

/// One stream's place on a connection, given back when it is dropped.
pub struct StreamSlot {
    connection: Rc<Connection>,
    counted: bool,
}

impl Connections {
    /// `open` builds a connection; `cap`: streams a connection carries at most, `None` for one connection uncounted.
    pub fn new(cap: Option<usize>, open: impl Fn() -> Connection + 'static) -> Connections {
        let first = Rc::new(open());
        Connections {
            connections: RefCell::new(vec![first]),
            cap: cap.map(|cap| cap.max(1)),
            open: Box::new(open),
        }
    }

    /// A place for one more stream: in the first connection with room, or in a new connection.
    pub fn take(&self) -> StreamSlot {
        let Some(cap) = self.cap else {
            let connection = Rc::clone(&self.connections.borrow()[0]);
            return StreamSlot {
                connection,
                counted: false,
            };
        };
        let mut connections = self.connections.borrow_mut();
        let connection = match connections
            .iter()
            .find(|connection| connection.streams.get() < cap)
        {
            Some(connection) => Rc::clone(connection),
            None => {
                let connection = Rc::new((self.open)());
                connections.push(Rc::clone(&connection));
                connection
            }
        };
        connection.streams.set(connection.streams.get() + 1);
        StreamSlot {
            connection,
            counted: true,
        }
    }

    /// How many connections there are, and how many streams each carries.
    #[cfg(test)]
    fn streams(&self) -> Vec<usize> {
        self.connections
            .borrow()
            .iter()
            .map(|l| l.streams.get())
            .collect()
    }
}

impl StreamSlot {
    pub fn connection(&self) -> &Connection {
        &self.connection
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

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if self.counted {
            self.connection
                .streams
                .set(self.connection.streams.get() - 1);
        }
    }
}

/// An upstream body holding its stream's place until it ends.
struct HeldBody {
    body: Payload,
    slot: Option<StreamSlot>,
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

    fn connections(cap: Option<usize>) -> Connections {
        Connections::new(cap, || {
            Connection::new(awc::Client::default(), Warmup::new(Duration::from_secs(1)))
        })
    }

    #[actix_web::test]
    async fn a_full_connection_sends_the_next_stream_to_a_new_one() {
        let connections = connections(Some(2));
        let slots: Vec<StreamSlot> = (0..5).map(|_| connections.take()).collect();
        assert_eq!(connections.streams(), [2, 2, 1]);
        // Streams of one connection share its client (its pool, hence one HTTP/2 connection).
        assert!(Rc::ptr_eq(&slots[0].connection, &slots[1].connection));
        assert!(!Rc::ptr_eq(&slots[1].connection, &slots[2].connection));
        drop(slots);
        assert_eq!(connections.streams(), [0, 0, 0]);
    }

    #[actix_web::test]
    async fn a_place_freed_on_an_earlier_connection_is_taken_first() {
        let connections = connections(Some(2));
        let mut slots: Vec<StreamSlot> = (0..4).map(|_| connections.take()).collect();
        slots.swap_remove(0);
        let refill = connections.take();
        assert_eq!(connections.streams(), [2, 2]);
        assert!(Rc::ptr_eq(&refill.connection, &slots[1].connection));
    }

    #[actix_web::test]
    async fn over_plain_http_one_connection_carries_everything_uncounted() {
        let connections = connections(None);
        let slots: Vec<StreamSlot> = (0..300).map(|_| connections.take()).collect();
        assert_eq!(connections.streams(), [0]);
        drop(slots);
        let body = connections
            .take()
            .hold(Payload::from(Bytes::from_static(b"data")));
        assert!(
            matches!(body, Payload::H1 { .. }),
            "the body goes on as it came"
        );
    }

    #[actix_web::test]
    async fn a_body_gives_its_place_back_when_it_ends_or_is_dropped() {
        let connections = connections(Some(1));
        let mut ended = connections
            .take()
            .hold(Payload::from(Bytes::from_static(b"event")));
        let dropped = connections
            .take()
            .hold(Payload::from(Bytes::from_static(b"x")));
        assert_eq!(connections.streams(), [1, 1]);
        assert_eq!(ended.next().await.unwrap().unwrap(), "event");
        assert_eq!(connections.streams(), [1, 1]);
        assert!(ended.next().await.is_none());
        assert_eq!(connections.streams(), [0, 1]);
        drop(dropped);
        assert_eq!(connections.streams(), [0, 0]);
    }
}
