//! What the relay writes to a WebSocket client: a turn's events, one text frame each, taken from
//! the relay stream's server-sent events (each event's data, as the upstream wrote it), and the
//! `error` frame a refused turn gets, shaped as the backend shapes it so that clients map it like
//! the HTTP answer it stands for.

use std::collections::VecDeque;

use actix_web::body::MessageBody;
use actix_web::ResponseError;
use bytes::Bytes;
use bytestring::ByteString;
use futures_util::StreamExt;
use serde_json::{json, Map, Value};

use super::super::error::ApiError;
use super::super::relay_stream::RelayStream;
use crate::upstream::sse::{data_of, events, EventSplitter};

/// A turn's events as text frames.
pub struct EventFrames {
    stream: RelayStream,
    splitter: EventSplitter,
    ready: VecDeque<Bytes>,
}

impl EventFrames {
    pub fn new(stream: RelayStream) -> EventFrames {
        EventFrames {
            stream,
            splitter: EventSplitter::default(),
            ready: VecDeque::new(),
        }
    }

    /// The next event's frame; `None` once the turn has ended.
    pub async fn next(&mut self) -> Option<ByteString> {
        loop {
            if let Some(data) = self.ready.pop_front() {
                match ByteString::try_from(data) {
                    Ok(text) => return Some(text),
                    // Not text: no client could read it as an event.
                    Err(_) => continue,
                }
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => {
                    let whole = self.splitter.complete(chunk);
                    self.take_events(&whole);
                }
                Some(Err(never)) => match never {},
                None => {
                    let tail = self.splitter.finish()?;
                    self.take_events(&tail);
                    if self.ready.is_empty() {
                        return None;
                    }
                }
            }
        }
    }

    fn take_events(&mut self, whole: &Bytes) {
        for (start, end, _) in events(whole) {
            // Comments (keep-alives) carry no data and are not events.
            if let Some(data) = data_of(&whole[start..end]) {
                self.ready.push_back(whole.slice_ref(data));
            }
        }
    }
}

/// `{"type":"error","status":…,"error":{…},"headers":{…}}` for a turn the relay refuses.
pub fn error_frame(error: &ApiError) -> ByteString {
    let response = error.error_response();
    let status = response.status().as_u16();
    let mut headers = Map::new();
    for (name, value) in response.headers() {
        if name.as_str() == "content-type" {
            continue;
        }
        if let Ok(value) = value.to_str() {
            headers.insert(name.as_str().to_owned(), Value::from(value));
        }
    }
    let body = response.into_body().try_into_bytes().unwrap_or_default();
    let error = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|mut body| body.get_mut("error").map(Value::take))
        .unwrap_or(Value::Null);
    let mut frame = json!({"type": "error", "status": status, "error": error});
    if !headers.is_empty() {
        frame["headers"] = Value::Object(headers);
    }
    ByteString::from(frame.to_string())
}
