//! One CSV record into an [`Event`]: serde maps the six fields onto [`Row`], whose field
//! types accept only what the format allows (`a`/`f`, plain decimal digits).
//!
//! `u64::from_str` would take a leading `+`, so numbers have a visitor of their own. A
//! field that fails makes serde stop without saying which field it was, so a failed record
//! is looked at again, field by field with the same checks ([`diagnose`]), to name the
//! field and quote what it held. That costs nothing on good records.

use super::{Event, Op, TraceErrorKind, MAX_TRACE_ALIGN};
use csv::ByteRecord;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

/// The names of the six fields, in file order.
pub(super) const FIELDS: [&str; 6] = ["op", "id", "size", "align", "thread", "t_ns"];

/// One event line as serde reads it (by position: the reader gives no headers).
#[derive(Deserialize)]
struct Row {
    op: OpField,
    id: Digits,
    size: Digits,
    align: Digits,
    thread: Digits,
    t_ns: LastDigits,
}

/// `a` or `f`, nothing else (no case folding, no spaces).
struct OpField(Op);

/// A number written as plain decimal digits that fits a `u64`.
struct Digits(u64);

/// [`Digits`] in the last field, which keeps the `\r` of a `\r\n` line end.
struct LastDigits(u64);

/// The op a field names.
fn op_of(field: &[u8]) -> Option<Op> {
    match field {
        b"a" => Some(Op::Alloc),
        b"f" => Some(Op::Free),
        _ => None,
    }
}

/// The value of a field of plain decimal digits (no sign, no spaces), if it fits a `u64`.
#[inline]
fn digits(field: &[u8]) -> Option<u64> {
    if field.is_empty() {
        return None;
    }
    let mut v = 0u64;
    for &b in field {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

/// The last field without the `\r` of a `\r\n` line end.
#[inline]
pub(super) fn strip_cr(field: &[u8]) -> &[u8] {
    field.strip_suffix(b"\r").unwrap_or(field)
}

/// A visitor of one field's bytes, checked by `check`.
struct FieldVisitor<F>(F, &'static str);

impl<'de, T, F: FnOnce(&[u8]) -> Option<T>> Visitor<'de> for FieldVisitor<F> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<T, E> {
        (self.0)(v).ok_or_else(|| E::custom(format_args!("expected {}", self.1)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        self.visit_bytes(v.as_bytes())
    }
}

impl<'de> Deserialize<'de> for OpField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_bytes(FieldVisitor(|f: &[u8]| op_of(f).map(OpField), "a or f"))
    }
}

impl<'de> Deserialize<'de> for Digits {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_bytes(FieldVisitor(
            |f: &[u8]| digits(f).map(Digits),
            "decimal digits",
        ))
    }
}

impl<'de> Deserialize<'de> for LastDigits {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_bytes(FieldVisitor(
            |f: &[u8]| digits(strip_cr(f)).map(LastDigits),
            "decimal digits",
        ))
    }
}

/// A field's text for an error message.
fn text(field: &[u8]) -> String {
    String::from_utf8_lossy(field).into_owned()
}

/// The event of one record (six fields, the last one possibly ending in `\r`).
#[inline]
pub(super) fn event_of(record: &ByteRecord) -> Result<Event, TraceErrorKind> {
    if record.len() != FIELDS.len() {
        return Err(TraceErrorKind::FieldCount {
            found: record.len(),
        });
    }
    let row: Row = record.deserialize(None).map_err(|e| diagnose(record, e))?;
    let thread = u32::try_from(row.thread.0).map_err(|_| TraceErrorKind::Malformed {
        field: "thread",
        value: text(&record[4]),
    })?;
    let (op, size, align) = (row.op.0, row.size.0, row.align.0);
    if op == Op::Alloc {
        if !align.is_power_of_two() || align > MAX_TRACE_ALIGN {
            return Err(TraceErrorKind::BadAlign(align));
        }
        if size > isize::MAX as u64 {
            return Err(TraceErrorKind::BadSize(size));
        }
    }
    Ok(Event {
        op,
        id: row.id.0,
        size,
        align,
        thread,
        t_ns: row.t_ns.0,
    })
}

/// Why serde refused a record of six fields: the first field that fails its check.
#[cold]
fn diagnose(record: &ByteRecord, serde_error: csv::Error) -> TraceErrorKind {
    if op_of(&record[0]).is_none() {
        return TraceErrorKind::UnknownOp(text(&record[0]));
    }
    for (i, &field) in FIELDS.iter().enumerate().skip(1) {
        let value = if i == FIELDS.len() - 1 {
            strip_cr(&record[i])
        } else {
            &record[i]
        };
        if digits(value).is_none() {
            return TraceErrorKind::Malformed {
                field,
                value: text(value),
            };
        }
    }
    // Every field passes the checks serde ran: serde failed for another reason.
    TraceErrorKind::Malformed {
        field: "record",
        value: serde_error.to_string(),
    }
}

/// Parses one event line (no header, no line end).
pub fn parse_line(line: &str) -> Result<Event, TraceErrorKind> {
    event_of(&ByteRecord::from(line.split(',').collect::<Vec<_>>()))
}
