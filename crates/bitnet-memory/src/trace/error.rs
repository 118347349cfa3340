//! Why a trace was rejected: the line and the reason.

use super::record::FIELDS;
use super::HEADER;
use std::fmt;

/// Why a line (or an event) was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceErrorKind {
    /// Not six comma-separated fields.
    FieldCount {
        /// Fields found.
        found: usize,
    },
    /// The op is neither `a` nor `f`.
    UnknownOp(String),
    /// A field is not a decimal number that fits its type.
    Malformed {
        /// Name of the field.
        field: &'static str,
        /// What the line had there.
        value: String,
    },
    /// An allocation's alignment is 0, not a power of two, or over 1 GiB.
    BadAlign(u64),
    /// An allocation's size is over `isize::MAX`.
    BadSize(u64),
    /// A free names an id never allocated.
    UnknownId(u64),
    /// A free names a block already freed.
    DoubleFree {
        /// The block.
        id: u64,
        /// Line (or event number) of the first free.
        freed_at: usize,
    },
    /// An allocation reuses the id of a block still live.
    IdLive {
        /// The block.
        id: u64,
        /// Line (or event number) of its allocation.
        allocated_at: usize,
    },
    /// An allocation reuses the id of a freed block (ids are unique per block).
    IdReused {
        /// The block.
        id: u64,
        /// Line (or event number) of its free.
        freed_at: usize,
    },
    /// A free states a size or alignment (other than 0) that differs from the allocation.
    FreeMismatch {
        /// The block.
        id: u64,
        /// `size` or `align`.
        field: &'static str,
        /// Value of the allocation.
        allocated: u64,
        /// Value on the free line.
        found: u64,
    },
    /// Reading failed.
    Io(String),
}

impl fmt::Display for TraceErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FieldCount { found } => {
                write!(f, "expected 6 fields ({HEADER}), found {found}")?;
                match FIELDS.get(*found) {
                    Some(missing) => write!(f, " (missing field `{missing}`)"),
                    None => f.write_str(" (more than 6 fields)"),
                }
            }
            Self::UnknownOp(op) if op == "op" => write!(
                f,
                "unknown op \"op\" (expected a or f; a header may only come before the first event)"
            ),
            Self::UnknownOp(op) => write!(f, "unknown op {} (expected a or f)", Shown(op)),
            Self::Malformed { field, value } => {
                let max = if *field == "thread" {
                    u64::from(u32::MAX)
                } else {
                    u64::MAX
                };
                write!(
                    f,
                    "malformed field `{field}`: {} (expected decimal digits, at most {max})",
                    Shown(value)
                )
            }
            Self::BadAlign(a) => {
                write!(
                    f,
                    "bad alignment {a} (must be a power of two from 1 to 2^30)"
                )
            }
            Self::BadSize(s) => write!(f, "size {s} is over isize::MAX"),
            Self::UnknownId(id) => write!(f, "free of unknown id {id}"),
            Self::DoubleFree { id, freed_at } => {
                write!(f, "double free of id {id} (first freed at line {freed_at})")
            }
            Self::IdLive { id, allocated_at } => write!(
                f,
                "allocation of id {id}, which is still live (allocated at line {allocated_at})"
            ),
            Self::IdReused { id, freed_at } => write!(
                f,
                "allocation reuses id {id}, freed at line {freed_at} (ids are unique per block)"
            ),
            Self::FreeMismatch {
                id,
                field,
                allocated,
                found,
            } => write!(
                f,
                "free of id {id} states {field} {found}, but it was allocated with {allocated}"
            ),
            Self::Io(e) => write!(f, "read error: {e}"),
        }
    }
}

/// Characters of a field quoted in full; a longer one is cut to its first
/// [`SHOWN_PREFIX`] characters and its length.
const SHOWN_MAX: usize = 64;
/// Characters kept of a field longer than [`SHOWN_MAX`].
const SHOWN_PREFIX: usize = 32;

/// A field's text as a message quotes it: in full up to [`SHOWN_MAX`] characters, else
/// its start and how long it was (a 10 MB field must not become a 10 MB message).
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(SHOWN_MAX) {
            None => write!(f, "{:?}", self.0),
            Some(_) => {
                let end = self
                    .0
                    .char_indices()
                    .nth(SHOWN_PREFIX)
                    .map_or(0, |(i, _)| i);
                write!(
                    f,
                    "{:?}... (cut: {} bytes in all)",
                    &self.0[..end],
                    self.0.len()
                )
            }
        }
    }
}

/// A rejected trace: the line (1-based; 0 when the file could not be opened) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceError {
    /// Line number, counting the header and blank lines, from 1.
    pub line: usize,
    /// The reason.
    pub kind: TraceErrorKind,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.kind)
    }
}

impl std::error::Error for TraceError {}
