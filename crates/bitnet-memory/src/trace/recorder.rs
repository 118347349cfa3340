//! Writing traces: the header, then one line per event.

use super::{Event, HEADER};
use std::io::{self, Write};

/// Writes trace lines to any `Write`: the header first, then events as they come.
/// Buffer the writer (`BufWriter`) when it is a file.
pub struct TraceWriter<W: Write> {
    out: W,
    events: u64,
}

impl<W: Write> TraceWriter<W> {
    /// Writes the header to `out`.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(HEADER.as_bytes())?;
        out.write_all(b"\n")?;
        Ok(Self { out, events: 0 })
    }

    /// Writes one event line.
    pub fn event(&mut self, e: &Event) -> io::Result<()> {
        self.events += 1;
        writeln!(self.out, "{e}")
    }

    /// Events written so far.
    pub fn events_written(&self) -> u64 {
        self.events
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer (not flushed).
    pub fn into_inner(self) -> W {
        self.out
    }
}
