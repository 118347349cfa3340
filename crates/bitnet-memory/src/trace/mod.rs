//! Allocation traces: the replayable `op,id,size,align,thread,t_ns` format.
//!
//! One event per line after an optional header line; the format is described in full in
//! `docs/trace-format.md`. [`Trace::read`] checks every line and rejects a bad one with its
//! line number and the reason (unknown op, malformed number, bad alignment, free of an
//! unknown id, double free, ...); a good file is kept event for event, so
//! [`Trace::write_to`] gives it back byte for byte when it was written in canonical form
//! (header, `\n` line ends, no comments).
//!
//! Besides the events, a trace answers the questions a report or a planner asks: live
//! bytes after every event ([`Trace::live_bytes`]), the peak ([`Trace::peak`]), each
//! block's lifetime ([`Trace::lifetimes`]) and a [`Summary`].
//!
//! ```
//! use bitnet_memory::trace::Trace;
//!
//! let t = Trace::parse_str("op,id,size,align,thread,t_ns\n\
//!                           a,1,100,16,0,0\n\
//!                           a,2,50,16,0,5\n\
//!                           f,1,0,0,0,9\n")?;
//! assert_eq!(t.live_bytes().collect::<Vec<_>>(), vec![100, 150, 50]);
//! assert_eq!(t.peak().live_bytes, 150);
//! # Ok::<(), bitnet_memory::trace::TraceError>(())
//! ```
//!
//! This is the one reader of the format in the workspace: the planner, the report, replay
//! and the benchmarks all read traces through it. Every reader accepts the same files:
//!
//! - the header `op,id,size,align,thread,t_ns`, optional, before the first event (as the
//!   first line, or after comment and blank lines only);
//! - blank lines and comment lines (starting with `#`), anywhere: skipped, but counted, so
//!   line numbers are those an editor shows;
//! - `\n` or `\r\n` line ends, and a last line without one;
//! - fields as plain decimal digits: no sign, no spaces, no quotes.
//!
//! [`Reader`] checks each line on its own and yields each [`Event`] with its line
//! ([`LineEvent`]), for consumers with rules of their own; [`Trace::read`] adds the
//! [`Validator`] (frees name live blocks, ids are never reused). Errors name the line
//! (from 1) and say what is wrong, naming the field and quoting it where one is at fault.
//!
//! One concept per file: [`Event`] and [`Op`] (`event.rs`), [`TraceError`] (`error.rs`),
//! the CSV reading with line numbers (`reader.rs`, over the `csv` crate), one record into
//! an event (`record.rs`, by serde), the [`Validator`] (`validate.rs`), the checked
//! [`Trace`] (`checked.rs`), peak, lifetimes and live bytes (`summary.rs`) and the
//! [`TraceWriter`] (`recorder.rs`).
#![deny(unsafe_code)]

mod checked;
mod error;
mod event;
mod reader;
mod record;
mod recorder;
mod summary;
mod validate;

#[cfg(test)]
mod tests;

pub use checked::Trace;
pub use error::{TraceError, TraceErrorKind};
pub use event::{Event, Op, HEADER, MAX_TRACE_ALIGN};
pub use reader::{LineEvent, Reader};
pub use record::parse_line;
pub use recorder::TraceWriter;
pub use summary::{Lifetime, LiveBytes, Peak, Summary};
pub use validate::Validator;
