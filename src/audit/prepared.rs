//! A row made ready on the thread that records it: the record's values packed into one buffer,
//! which the writer renders into the row's canonical content (`canonical.rs`) straight into the
//! segment it is filling. The request path copies a row's values (some 250 bytes) and nothing
//! else: no JSON, no escaping, no keys. A record sent as it is would cross threads as a box and
//! some six strings of its own, each a cache miss for the writer and a free handed back to the
//! thread that made it; a row rendered on the worker would carry its keys across, more than
//! twice the bytes to write cold on one core and read cold on the other (`docs/performance.md`).
//!
//! Layout: the time (8 bytes), then each field the record has after it, in declaration order —
//! the order of the content — as its place in [`Field`] (1 byte) and its value: a number as 8
//! bytes, `stream` as 1, a text as its length (4) and bytes, the accounts tried as their count
//! (4) and each as a text. A field the record does not have is left out, as from the content.

use compact_str::CompactString;

use super::blocks::{facets_of, FACETS};
use super::record::{model_of, ActorKind, Kind, Record};

/// Declares [`Field`], a row's fields in declaration order, [`KEYS`], each as the content writes
/// it (`,"name":`), and how a record is packed: one list, so a key is its field's name and a
/// row holds its fields in the list's order — the declaration's, which a test compares with
/// serde's.
macro_rules! fields {
    ($($name:ident),* $(,)?) => {
        /// A row's fields after its time, in the order of `Record`'s declaration.
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Field { $($name),* }

        const ALL: &[Field] = &[$(Field::$name),*];

        /// Each field's key as the content writes it, by its place in [`Field`].
        pub const KEYS: &[&str] = &[$(concat!(",\"", stringify!($name), "\":")),*];

        /// Packs each field `record` has after its time, in order. Every field named, none
        /// left to `..`: a field added to `Record` does not compile here until it is listed.
        fn pack_fields(record: &Record, row: &mut Packing) {
            let Record { at_ms: _, $($name),* } = record;
            $($name.pack(Field::$name, row);)*
        }
    };
}

fields!(
    kind,
    action,
    request_id,
    trace_id,
    tenant_id,
    key_id,
    key_name,
    client_addr,
    client_name,
    client_version,
    endpoint,
    model_requested,
    model_served,
    account_id,
    accounts_tried,
    status,
    error_code,
    stream,
    stream_outcome,
    input_tokens,
    output_tokens,
    duration_ms,
    actor_kind,
    actor_id,
    actor_name,
    target,
    result,
    capture_id,
);

impl Field {
    pub fn key(self) -> &'static str {
        KEYS[self as usize]
    }
}

/// A field's value as a packed row holds it. Texts are bytes: written as they were given (from
/// `&str`s), rendered as bytes, made `&str` again only where a text is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Text(&'a [u8]),
    Texts(Texts<'a>),
    Number(u64),
    Bool(bool),
}

/// One row, ready for the chain: see the module's notes.
pub struct Prepared(Vec<u8>);

impl Prepared {
    pub fn of(record: &Record) -> Prepared {
        // A request row's values are some 250 bytes.
        let mut row = Packing(Vec::with_capacity(320));
        row.0.extend_from_slice(&record.at_ms.to_le_bytes());
        pack_fields(record, &mut row);
        Prepared(row.0)
    }

    /// The record's time, unix milliseconds.
    pub fn at_ms(&self) -> i64 {
        Reader(&self.0).i64()
    }

    /// The fields the record has after its time, in order, with their values.
    pub fn fields(&self) -> Fields<'_> {
        Fields(Reader(self.0.get(8..).unwrap_or_default()))
    }

    /// The values the block index files the row under (`blocks::facets_of`); a status is written
    /// as text into `status`.
    pub fn facets<'a>(&'a self, status: &'a mut itoa::Buffer) -> [(char, Option<&'a str>); FACETS] {
        let (mut tenant, mut key, mut asked, mut served, mut account) =
            (None, None, None, None, None);
        let (mut code, mut action) = (None, None);
        for (field, value) in self.fields() {
            match (field, value) {
                (Field::status, Value::Number(number)) => code = u16::try_from(number).ok(),
                (_, Value::Text(bytes)) => {
                    let slot = match field {
                        Field::action => &mut action,
                        Field::tenant_id => &mut tenant,
                        Field::key_id => &mut key,
                        Field::model_requested => &mut asked,
                        Field::model_served => &mut served,
                        Field::account_id => &mut account,
                        _ => continue,
                    };
                    // Packed from `&str`s: always text.
                    *slot = std::str::from_utf8(bytes).ok();
                }
                _ => {}
            }
        }
        facets_of(
            [tenant, key, model_of(served, asked), account],
            code,
            action.unwrap_or_default(),
            status,
        )
    }
}

/// A row being packed.
struct Packing(Vec<u8>);

impl Packing {
    fn tag(&mut self, field: Field) {
        self.0.push(field as u8);
    }

    fn text(&mut self, text: &str) {
        self.0.extend_from_slice(&len(text.len()).to_le_bytes());
        self.0.extend_from_slice(text.as_bytes());
    }

    fn number(&mut self, field: Field, number: u64) {
        self.tag(field);
        self.0.extend_from_slice(&number.to_le_bytes());
    }
}

/// A field's value packed after its tag; an absent one (`None`, an empty list) is left out.
trait Pack {
    fn pack(&self, field: Field, row: &mut Packing);
}

impl Pack for CompactString {
    fn pack(&self, field: Field, row: &mut Packing) {
        row.tag(field);
        row.text(self);
    }
}

impl Pack for Kind {
    fn pack(&self, field: Field, row: &mut Packing) {
        row.tag(field);
        row.text(self.as_str());
    }
}

impl Pack for ActorKind {
    fn pack(&self, field: Field, row: &mut Packing) {
        row.tag(field);
        row.text(self.as_str());
    }
}

impl Pack for Vec<CompactString> {
    fn pack(&self, field: Field, row: &mut Packing) {
        if self.is_empty() {
            return;
        }
        row.tag(field);
        row.0.extend_from_slice(&len(self.len()).to_le_bytes());
        for text in self {
            row.text(text);
        }
    }
}

impl Pack for u16 {
    fn pack(&self, field: Field, row: &mut Packing) {
        row.number(field, u64::from(*self));
    }
}

impl Pack for u64 {
    fn pack(&self, field: Field, row: &mut Packing) {
        row.number(field, *self);
    }
}

impl Pack for bool {
    fn pack(&self, field: Field, row: &mut Packing) {
        row.tag(field);
        row.0.push(u8::from(*self));
    }
}

impl<T: Pack> Pack for Option<T> {
    fn pack(&self, field: Field, row: &mut Packing) {
        if let Some(value) = self {
            value.pack(field, row);
        }
    }
}

/// A length as a packed row holds it. Every field of a row is bounded far below 4 GB; a length
/// beyond would be cut to what the reader then finds (never out of the buffer).
fn len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// What is left of a packed row to read. Packed by [`Prepared::of`] alone, so it always holds
/// what its tags say; a read past its end gives empty values rather than panicking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).first().copied()
    }

    fn u32(&mut self) -> usize {
        u32::from_le_bytes(self.take(4).try_into().unwrap_or_default()) as usize
    }

    fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.take(8).try_into().unwrap_or_default())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap_or_default())
    }

    fn text(&mut self) -> &'a [u8] {
        let n = self.u32();
        self.take(n)
    }
}

/// The fields of a packed row, in order ([`Prepared::fields`]).
pub struct Fields<'a>(Reader<'a>);

impl<'a> Iterator for Fields<'a> {
    type Item = (Field, Value<'a>);

    fn next(&mut self) -> Option<(Field, Value<'a>)> {
        let field = *ALL.get(usize::from(self.0.u8()?))?;
        let value = match field {
            Field::status | Field::input_tokens | Field::output_tokens | Field::duration_ms => {
                Value::Number(self.0.u64())
            }
            Field::stream => Value::Bool(self.0.u8() == Some(1)),
            Field::accounts_tried => {
                let count = self.0.u32();
                let start = self.0;
                for _ in 0..count {
                    self.0.text();
                }
                let bytes = &start.0[..start.0.len() - self.0 .0.len()];
                Value::Texts(Texts(Reader(bytes), count))
            }
            _ => Value::Text(self.0.text()),
        };
        Some((field, value))
    }
}

/// A packed list of texts: its texts in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Texts<'a>(Reader<'a>, usize);

impl<'a> Iterator for Texts<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        self.1 = self.1.checked_sub(1)?;
        Some(self.0.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::blocks::facets;
    use crate::audit::canonical::every_field;

    /// Every field, an index value JSON escapes, and a status the index files.
    fn request() -> Record {
        Record {
            tenant_id: Some("tenant \"quoted\"".into()),
            status: Some(429),
            ..every_field()
        }
    }

    #[test]
    fn every_key_is_its_fields_name() {
        assert_eq!(ALL.len(), KEYS.len());
        assert_eq!(Field::kind.key(), ",\"kind\":");
        assert_eq!(Field::capture_id.key(), ",\"capture_id\":");
        for (i, field) in ALL.iter().enumerate() {
            assert_eq!(*field as usize, i);
            assert_eq!(field.key(), format!(",\"{field:?}\":"));
        }
    }

    #[test]
    fn a_prepared_row_holds_each_value_its_record_has_in_order() {
        let row = Prepared::of(&every_field());
        assert_eq!(row.at_ms(), every_field().at_ms);
        let fields: Vec<_> = row.fields().collect();
        assert_eq!(fields.len(), ALL.len(), "every field set, every field held");
        assert_eq!(fields[0], (Field::kind, Value::Text(b"request")));
        let Some((Field::accounts_tried, Value::Texts(tried))) = fields.get(14).copied() else {
            panic!("the accounts tried in their place: {fields:?}");
        };
        assert_eq!(tried.collect::<Vec<_>>(), [b"acct_1", b"acct_2"]);
        assert_eq!(fields[15], (Field::status, Value::Number(200)));
        assert_eq!(fields[17], (Field::stream, Value::Bool(true)));
        assert_eq!(fields[22], (Field::actor_kind, Value::Text(b"admin_token")));

        let act = Prepared::of(&Record::act(ActorKind::Cli, "key.create"));
        let fields: Vec<Field> = act.fields().map(|(field, _)| field).collect();
        assert_eq!(
            fields,
            [Field::kind, Field::action, Field::actor_kind, Field::result]
        );
        let empty = Prepared::of(&Record::default());
        assert_eq!(
            empty.fields().count(),
            2,
            "a kind and an action, even empty"
        );
    }

    #[test]
    fn a_prepared_row_files_under_the_values_its_record_does() {
        let (mut ours, mut theirs) = (itoa::Buffer::new(), itoa::Buffer::new());
        for record in [
            every_field(),
            request(),
            Record {
                model_served: None,
                ..request()
            },
            Record {
                kind: Kind::Admin,
                action: "admin.refused".into(),
                status: Some(401),
                ..Record::default()
            },
            Record::act(ActorKind::Cli, "key.create"),
            Record::default(),
        ] {
            let prepared = Prepared::of(&record);
            assert_eq!(
                prepared.facets(&mut ours),
                facets(&record, &mut theirs),
                "{record:?}"
            );
        }
    }

    #[test]
    fn a_cut_row_reads_as_fewer_or_emptier_values_without_panicking() {
        let whole = Prepared::of(&every_field()).0;
        for end in 0..whole.len() {
            let cut = Prepared(whole[..end].to_vec());
            let _ = cut.at_ms();
            for (_, value) in cut.fields() {
                if let Value::Texts(texts) = value {
                    texts.for_each(drop);
                }
            }
            let mut status = itoa::Buffer::new();
            let _ = cut.facets(&mut status);
        }
    }
}
