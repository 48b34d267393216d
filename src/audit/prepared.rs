//! A row made ready on the thread that records it: its canonical content but for its place, its
//! time, and the values the block index files it under — in one allocation. The writer then
//! reads each row from one buffer, front to back, and frees one block: a record sent as it is
//! would cross threads as a box and some six strings of its own (the request, trace, key and
//! account ids, the accounts tried), each a cache miss for the writer to read and a free for the
//! allocator to hand back to the thread that made it. That traffic, not the writer's
//! instructions, was most of what a row cost (`docs/performance.md`).
//!
//! Layout: a header — the time (8 bytes), the content's length (4), each facet value's length
//! (4 each, [`ABSENT`] when the row has none) — then the content, then the facet values.

use super::blocks::{facets, FACETS, FACET_PREFIXES};
use super::canonical::write_fields;
use super::record::Record;

/// A facet's length when the row has no such value.
const ABSENT: u32 = u32::MAX;
const HEADER: usize = 8 + 4 + 4 * FACETS;

/// One row, ready for the chain: see the module's notes.
pub struct Prepared(Vec<u8>);

impl Prepared {
    pub fn of(record: &Record) -> Result<Prepared, serde_json::Error> {
        let mut status = itoa::Buffer::new();
        let values = facets(record, &mut status);
        let facet_bytes: usize = values.iter().filter_map(|(_, v)| v.map(str::len)).sum();
        // The content of a request row is some 500 bytes.
        let mut bytes = Vec::with_capacity(HEADER + 640 + facet_bytes);
        bytes.resize(HEADER, 0);
        write_fields(&mut bytes, record)?;
        let content = len(bytes.len() - HEADER);
        bytes[0..8].copy_from_slice(&record.at_ms.to_le_bytes());
        bytes[8..12].copy_from_slice(&content.to_le_bytes());
        for (i, (_, value)) in values.iter().enumerate() {
            let at = 12 + 4 * i;
            let length = value.map_or(ABSENT, |v| len(v.len()));
            bytes[at..at + 4].copy_from_slice(&length.to_le_bytes());
            bytes.extend_from_slice(value.unwrap_or_default().as_bytes());
        }
        Ok(Prepared(bytes))
    }

    /// The record's time, unix milliseconds.
    pub fn at_ms(&self) -> i64 {
        i64::from_le_bytes(self.0[0..8].try_into().unwrap_or_default())
    }

    /// The canonical content after the place: `,"at_ms":…}` (`canonical.rs`).
    pub fn fields(&self) -> &[u8] {
        &self.0[HEADER..HEADER + self.content_len()]
    }

    /// The values the block index files the row under, as [`facets`] gives them.
    pub fn facets(&self) -> [(char, Option<&str>); FACETS] {
        let mut at = HEADER + self.content_len();
        let mut values = [None; FACETS];
        for (i, value) in values.iter_mut().enumerate() {
            let length = self.u32_at(12 + 4 * i);
            if length == ABSENT {
                continue;
            }
            let end = at + length as usize;
            // Written from `&str`s by `of`: always text.
            *value = std::str::from_utf8(&self.0[at..end]).ok();
            at = end;
        }
        std::array::from_fn(|i| (FACET_PREFIXES[i], values[i]))
    }

    fn content_len(&self) -> usize {
        self.u32_at(8) as usize
    }

    fn u32_at(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.0[at..at + 4].try_into().unwrap_or_default())
    }
}

/// A length as the header holds it. A row is bounded far below 4 GB (every field is), so
/// saturating only guards what cannot happen.
fn len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(ABSENT - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::canonical::{canonical, every_field};
    use crate::audit::ActorKind;

    /// Every field, an index value JSON escapes, and a status the index files.
    fn request() -> Record {
        Record {
            tenant_id: Some("tenant \"quoted\"".into()),
            status: Some(429),
            ..every_field()
        }
    }

    #[test]
    fn a_prepared_row_holds_the_canonical_content_after_its_place() {
        for record in [every_field(), request(), Record::default()] {
            let prepared = Prepared::of(&record).unwrap();
            let mut line = b"{\"seq\":42".to_vec();
            line.extend_from_slice(prepared.fields());
            assert_eq!(
                String::from_utf8(line).unwrap(),
                canonical(42, &record).unwrap()
            );
            assert_eq!(prepared.at_ms(), record.at_ms);
        }
    }

    #[test]
    fn a_prepared_row_files_under_the_values_its_record_does() {
        let mut status = itoa::Buffer::new();
        for record in [
            every_field(),
            request(),
            Record {
                model_served: None,
                ..request()
            },
            Record::act(ActorKind::Cli, "key.create"),
            Record::default(),
        ] {
            let prepared = Prepared::of(&record).unwrap();
            assert_eq!(prepared.facets(), facets(&record, &mut status));
        }
    }
}
