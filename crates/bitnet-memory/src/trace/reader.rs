//! Reading trace files: the `csv` crate splits lines and fields, [`Reader`] numbers the
//! lines and turns each record into an [`Event`], [`Trace::read`] checks them in order.
//!
//! What a reader accepts (see `docs/trace-format.md`): an optional header before the
//! first event (as the first line, or after comment and blank lines only); blank lines and lines starting with `#` anywhere (skipped, but counted in line
//! numbers); `\n` or `\r\n` line ends; a last line with or without a line end. Fields
//! are never quoted, so a `"` is an ordinary (and malformed) character.

use super::record::{event_of, strip_cr, FIELDS};
use super::{Event, Trace, TraceError, TraceErrorKind};
use csv::{ByteRecord, ReaderBuilder, Terminator};
use std::io::{self, BufRead, Read};
use std::path::Path;

/// Bytes the CSV reader asks its input for at a time.
const BUFFER: usize = 64 << 10;

/// One event of a trace file and the line it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineEvent {
    /// Line number in the file, from 1, counting the header, blank and comment lines.
    pub line: usize,
    /// The event.
    pub event: Event,
}

/// Reads a trace file event by event, checking each line on its own (fields, op, numbers,
/// alignment and size of an allocation), not whether the events agree with each other:
/// that is the [`Validator`](super::Validator)'s work, which [`Trace::read`] adds.
///
/// Yields every event with its line number; the first bad line ends the iteration with
/// its error.
///
/// ```
/// use bitnet_memory::trace::{Op, Reader};
///
/// let text = "op,id,size,align,thread,t_ns\n# warm-up\na,1,64,8,0,0\r\n\nf,1,0,0,0,5\n";
/// let events: Vec<_> = Reader::new(text.as_bytes()).collect::<Result<_, _>>()?;
/// assert_eq!(events.len(), 2);
/// assert_eq!((events[1].line, events[1].event.op), (5, Op::Free));
/// # Ok::<(), bitnet_memory::trace::TraceError>(())
/// ```
pub struct Reader<R> {
    csv: csv::Reader<Tally<R>>,
    record: ByteRecord,
    /// An event has been read: a header line is no longer allowed.
    started: bool,
    done: bool,
}

/// The input of the CSV reader, watched: how many bytes it gave and the last of them.
/// `csv` counts a line when it consumes its `\n`; a last line without one is not counted
/// yet when its record comes back, and this is how the reader tells the two apart.
struct Tally<R> {
    inner: R,
    total: u64,
    last: u8,
}

impl<R: Read> Read for Tally<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.total += n as u64;
            self.last = buf[n - 1];
        }
        Ok(n)
    }
}

impl<R: Read> Reader<R> {
    /// A reader of `input` (buffered inside: no need for a `BufReader`).
    pub fn new(input: R) -> Self {
        let csv = ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .quoting(false)
            .comment(Some(b'#'))
            // Only `\n` ends a record (the default would also end one at a lone `\r`);
            // the `\r` of a `\r\n` stays on the last field and is dropped there.
            .terminator(Terminator::Any(b'\n'))
            .buffer_capacity(BUFFER)
            .from_reader(Tally {
                inner: input,
                total: 0,
                last: 0,
            });
        Self {
            csv,
            record: ByteRecord::new(),
            started: false,
            done: false,
        }
    }

    /// The line of the record just read.
    fn record_line(&self) -> usize {
        let pos = self.csv.position();
        let tally = self.csv.get_ref();
        // A record ends at its `\n`, which `csv` has consumed and counted, unless it is the
        // last line of the input and has none.
        let unterminated = pos.byte() == tally.total && tally.last != b'\n';
        (pos.line() - u64::from(!unterminated)) as usize
    }

    /// The next event, `None` at the end of the input.
    fn read_event(&mut self) -> Result<Option<LineEvent>, TraceError> {
        loop {
            let more = self.csv.read_byte_record(&mut self.record).map_err(|e| {
                let line = self.csv.position().line() as usize;
                let message = match e.into_kind() {
                    csv::ErrorKind::Io(e) => e.to_string(),
                    // Not raised for byte records read without headers or length checks.
                    other => format!("{other:?}"),
                };
                TraceError {
                    line,
                    kind: TraceErrorKind::Io(message),
                }
            })?;
            if !more {
                return Ok(None);
            }
            let line = self.record_line();
            let r = &self.record;
            // A `\r\n` line that is otherwise empty (`csv` skips bare `\n` lines itself).
            if r.len() == 1 && &r[0] == b"\r" {
                continue;
            }
            if !self.started && is_header(r) {
                continue;
            }
            let event = event_of(r).map_err(|kind| TraceError { line, kind })?;
            self.started = true;
            return Ok(Some(LineEvent { line, event }));
        }
    }
}

/// Whether a record is the header line.
fn is_header(r: &ByteRecord) -> bool {
    r.len() == FIELDS.len()
        && r.iter().zip(FIELDS).enumerate().all(|(i, (f, name))| {
            let f = if i == FIELDS.len() - 1 {
                strip_cr(f)
            } else {
                f
            };
            f == name.as_bytes()
        })
}

impl<R: Read> Iterator for Reader<R> {
    type Item = Result<LineEvent, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.read_event().transpose();
        self.done = !matches!(item, Some(Ok(_)));
        item
    }
}

impl Trace {
    /// Parses a whole trace held in a string.
    pub fn parse_str(text: &str) -> Result<Self, TraceError> {
        Self::read(text.as_bytes())
    }

    /// Reads and checks a trace: each line with [`Reader`], the events in order with the
    /// [`Validator`](super::Validator). The header may come before the first event; blank
    /// lines and lines starting with `#` are skipped; `\r\n` line ends are accepted.
    pub fn read<R: BufRead>(r: R) -> Result<Self, TraceError> {
        Self::read_unbuffered(r)
    }

    /// [`read`](Self::read) for any input: the reader buffers it itself.
    fn read_unbuffered(r: impl Read) -> Result<Self, TraceError> {
        let mut t = Self::new();
        for item in Reader::new(r) {
            let LineEvent { line, event } = item?;
            t.validator
                .check(&event, line)
                .map_err(|kind| TraceError { line, kind })?;
            t.events.push(event);
        }
        Ok(t)
    }

    /// Reads a trace file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, TraceError> {
        let f = std::fs::File::open(path.as_ref()).map_err(|e| TraceError {
            line: 0,
            kind: TraceErrorKind::Io(format!("{}: {e}", path.as_ref().display())),
        })?;
        Self::read_unbuffered(f)
    }
}
