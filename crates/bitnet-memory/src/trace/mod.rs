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
//! One concept per file: [`Event`] and [`Op`] (`event.rs`), [`TraceError`] (`error.rs`),
//! the line reader (`reader.rs`), the [`Validator`] (`validate.rs`), the checked [`Trace`]
//! (`checked.rs`), peak, lifetimes and live bytes (`summary.rs`) and the [`TraceWriter`]
//! (`recorder.rs`).
#![deny(unsafe_code)]

mod checked;
mod error;
mod event;
mod reader;
mod recorder;
mod summary;
mod validate;

pub use checked::Trace;
pub use error::{TraceError, TraceErrorKind};
pub use event::{Event, Op, HEADER, MAX_TRACE_ALIGN};
pub use reader::parse_line;
pub use recorder::TraceWriter;
pub use summary::{Lifetime, LiveBytes, Peak, Summary};
pub use validate::Validator;
