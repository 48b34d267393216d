//! The relay's memory of the responses it served, for clients that refer back to them. The Codex
//! backend stores nothing (`store` is false), but stateful Responses clients send earlier items
//! back as `item_reference`s, chain turns with `previous_response_id`, or replay reasoning
//! without its `encrypted_content`. This module owns what makes them work unmodified:
//!
//! - [`ResponseMemory`] (`memory.rs`): per API key, in memory only, the body the relay forwarded
//!   and the `response.output_item.done` events it returned, shared and unparsed, by response id
//!   (items are found by id when referred to); bounded by time and bytes, oldest first out;
//!   zeroized when forgotten where the memory holds the last reference; its gauges (`metrics.rs`);
//! - [`Recording`] (`record.rs`): the output events of one answer, kept as shared slices as they
//!   pass, remembered once the response completes;
//! - [`expand`] (`expand.rs`): a request's references replaced by what they refer to, before the
//!   request goes upstream, or the reference the memory does not hold; and the account that
//!   wrote the encrypted reasoning a request replays with its content.

mod expand;
mod memory;
mod metrics;
mod record;

pub use self::expand::{expand, writer_of_replayed, Expanded, Unknown};
pub use self::memory::{Limits, ResponseMemory};
pub use self::metrics::MemoryMetrics;
pub use self::record::Recording;
