//! A checked trace: the events of a consistent file, in order.

use super::{Event, TraceErrorKind, TraceWriter, Validator};
use std::io::{self, Write};

/// A checked allocation trace.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    pub(super) events: Vec<Event>,
    pub(super) validator: Validator,
}

impl Trace {
    /// An empty trace.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an event after checking it against the trace so far.
    pub fn push(&mut self, e: Event) -> Result<(), TraceErrorKind> {
        self.validator.check(&e, self.events.len() + 1)?;
        self.events.push(e);
        Ok(())
    }

    /// Writes the trace: the header, then one line per event.
    pub fn write_to<W: Write>(&self, w: W) -> io::Result<()> {
        let mut tw = TraceWriter::new(w)?;
        for e in &self.events {
            tw.event(e)?;
        }
        tw.flush()
    }

    /// The trace as text, as [`write_to`](Self::write_to) writes it.
    pub fn to_csv(&self) -> String {
        let mut v = Vec::new();
        self.write_to(&mut v).expect("writing to a Vec cannot fail");
        String::from_utf8(v).expect("the writer writes ASCII")
    }

    /// The events, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether the trace has no event.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}
