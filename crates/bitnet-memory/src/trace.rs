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
#![deny(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, Write};
use std::path::Path;

/// The header line of a trace file.
pub const HEADER: &str = "op,id,size,align,thread,t_ns";

/// Largest alignment a trace may ask for: 1 GiB (what the pool serves).
pub const MAX_TRACE_ALIGN: u64 = 1 << 30;

/// What an event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `a`: a block is allocated.
    Alloc,
    /// `f`: a block is freed.
    Free,
}

impl Op {
    /// The letter of the op in a trace file.
    pub fn letter(self) -> char {
        match self {
            Op::Alloc => 'a',
            Op::Free => 'f',
        }
    }
}

/// One line of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Allocate or free.
    pub op: Op,
    /// The block; unique per block within a trace.
    pub id: u64,
    /// Bytes asked for (`a`); 0 on a free, or the block's size if the recorder wrote it.
    pub size: u64,
    /// Alignment asked for, a power of two (`a`); 0 on a free, or the block's alignment.
    pub align: u64,
    /// Small integer naming the OS thread that made the call.
    pub thread: u32,
    /// Nanoseconds since the trace began. Need not grow from line to line: threads race.
    pub t_ns: u64,
}

impl Event {
    /// An allocation event.
    pub fn alloc(id: u64, size: u64, align: u64, thread: u32, t_ns: u64) -> Self {
        Self {
            op: Op::Alloc,
            id,
            size,
            align,
            thread,
            t_ns,
        }
    }

    /// A free event (size and alignment written as 0).
    pub fn free(id: u64, thread: u32, t_ns: u64) -> Self {
        Self {
            op: Op::Free,
            id,
            size: 0,
            align: 0,
            thread,
            t_ns,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{},{},{},{},{},{}",
            self.op.letter(),
            self.id,
            self.size,
            self.align,
            self.thread,
            self.t_ns
        )
    }
}

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
                write!(
                    f,
                    "expected 6 fields (op,id,size,align,thread,t_ns), found {found}"
                )
            }
            Self::UnknownOp(op) => write!(f, "unknown op {op:?} (expected a or f)"),
            Self::Malformed { field, value } => {
                write!(f, "malformed {field} {value:?} (expected a decimal number)")
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

/// Parses one event line (no header, no line end).
pub fn parse_line(line: &str) -> Result<Event, TraceErrorKind> {
    let mut fields = [""; 6];
    let mut n = 0;
    for f in line.split(',') {
        if n < 6 {
            fields[n] = f;
        }
        n += 1;
    }
    if n != 6 {
        return Err(TraceErrorKind::FieldCount { found: n });
    }
    let op = match fields[0] {
        "a" => Op::Alloc,
        "f" => Op::Free,
        other => return Err(TraceErrorKind::UnknownOp(other.to_string())),
    };
    let num = |i: usize, field: &'static str| -> Result<u64, TraceErrorKind> {
        let s = fields[i];
        let malformed = || TraceErrorKind::Malformed {
            field,
            value: s.to_string(),
        };
        // `u64::from_str` would accept a leading `+`; the format is digits only.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        s.parse::<u64>().map_err(|_| malformed())
    };
    let id = num(1, "id")?;
    let size = num(2, "size")?;
    let align = num(3, "align")?;
    let thread = u32::try_from(num(4, "thread")?).map_err(|_| TraceErrorKind::Malformed {
        field: "thread",
        value: fields[4].to_string(),
    })?;
    let t_ns = num(5, "t_ns")?;
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
        id,
        size,
        align,
        thread,
        t_ns,
    })
}

#[derive(Debug, Clone, Copy)]
enum BlockState {
    Live { size: u64, align: u64, at: usize },
    Freed { at: usize },
}

/// Checks that a sequence of events is consistent: frees name live blocks, ids are not
/// reused. `at` numbers (lines or event numbers) only go into error messages.
#[derive(Debug, Clone, Default)]
pub struct Validator {
    blocks: HashMap<u64, BlockState>,
}

impl Validator {
    /// A validator that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `e` against what came before and records it; on error nothing is recorded.
    pub fn check(&mut self, e: &Event, at: usize) -> Result<(), TraceErrorKind> {
        match e.op {
            Op::Alloc => {
                if !e.align.is_power_of_two() || e.align > MAX_TRACE_ALIGN {
                    return Err(TraceErrorKind::BadAlign(e.align));
                }
                if e.size > isize::MAX as u64 {
                    return Err(TraceErrorKind::BadSize(e.size));
                }
                match self.blocks.get(&e.id) {
                    Some(BlockState::Live { at: a, .. }) => Err(TraceErrorKind::IdLive {
                        id: e.id,
                        allocated_at: *a,
                    }),
                    Some(BlockState::Freed { at: f }) => Err(TraceErrorKind::IdReused {
                        id: e.id,
                        freed_at: *f,
                    }),
                    None => {
                        self.blocks.insert(
                            e.id,
                            BlockState::Live {
                                size: e.size,
                                align: e.align,
                                at,
                            },
                        );
                        Ok(())
                    }
                }
            }
            Op::Free => match self.blocks.get(&e.id) {
                None => Err(TraceErrorKind::UnknownId(e.id)),
                Some(BlockState::Freed { at: f }) => Err(TraceErrorKind::DoubleFree {
                    id: e.id,
                    freed_at: *f,
                }),
                Some(&BlockState::Live { size, align, .. }) => {
                    let mismatch = |field, allocated, found| TraceErrorKind::FreeMismatch {
                        id: e.id,
                        field,
                        allocated,
                        found,
                    };
                    if e.size != 0 && e.size != size {
                        return Err(mismatch("size", size, e.size));
                    }
                    if e.align != 0 && e.align != align {
                        return Err(mismatch("align", align, e.align));
                    }
                    self.blocks.insert(e.id, BlockState::Freed { at });
                    Ok(())
                }
            },
        }
    }

    /// Size of a live block.
    pub fn live_size(&self, id: u64) -> Option<u64> {
        match self.blocks.get(&id) {
            Some(BlockState::Live { size, .. }) => Some(*size),
            _ => None,
        }
    }
}

/// A checked allocation trace.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    events: Vec<Event>,
    validator: Validator,
}

/// The highest live-byte count of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Peak {
    /// Sum of the requested sizes of the blocks live at the peak.
    pub live_bytes: u64,
    /// Number of blocks live at the peak.
    pub live_blocks: usize,
    /// Index (into [`Trace::events`]) of the event after which the peak was first reached;
    /// 0 for an empty trace.
    pub event_index: usize,
}

/// One block's life in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// The block's id.
    pub id: u64,
    /// Requested size.
    pub size: u64,
    /// Requested alignment.
    pub align: u64,
    /// Thread that allocated it.
    pub thread: u32,
    /// Index of its allocation event.
    pub alloc_index: usize,
    /// Index of its free event; `None` if it is live at the end.
    pub free_index: Option<usize>,
    /// Thread that freed it.
    pub free_thread: Option<u32>,
}

/// Counts over a whole trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Events.
    pub events: usize,
    /// Allocation events.
    pub allocs: usize,
    /// Free events.
    pub frees: usize,
    /// Sum of all allocation sizes.
    pub bytes_allocated: u64,
    /// Largest allocation.
    pub largest: u64,
    /// Distinct thread numbers.
    pub threads: usize,
    /// Frees made by another thread than the allocation.
    pub cross_thread_frees: usize,
    /// Largest `t_ns`.
    pub duration_ns: u64,
    /// The peak of live bytes.
    pub peak: Peak,
    /// Blocks live after the last event.
    pub live_blocks_at_end: usize,
    /// Their bytes.
    pub live_bytes_at_end: u64,
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

    /// Parses a whole trace held in a string.
    pub fn parse_str(text: &str) -> Result<Self, TraceError> {
        Self::read(text.as_bytes())
    }

    /// Reads and checks a trace. The first line may be the header; blank lines and lines
    /// starting with `#` are skipped; `\r\n` line ends are accepted.
    pub fn read<R: BufRead>(mut r: R) -> Result<Self, TraceError> {
        let mut t = Self::new();
        let mut buf = String::new();
        let mut line_no = 0;
        loop {
            buf.clear();
            line_no += 1;
            let n = r.read_line(&mut buf).map_err(|e| TraceError {
                line: line_no,
                kind: TraceErrorKind::Io(e.to_string()),
            })?;
            if n == 0 {
                break;
            }
            let line = buf.strip_suffix('\n').unwrap_or(&buf);
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() || line.starts_with('#') || (line_no == 1 && line == HEADER) {
                continue;
            }
            let err = |kind| TraceError {
                line: line_no,
                kind,
            };
            let e = parse_line(line).map_err(err)?;
            t.validator.check(&e, line_no).map_err(err)?;
            t.events.push(e);
        }
        Ok(t)
    }

    /// Reads a trace file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, TraceError> {
        let f = std::fs::File::open(path.as_ref()).map_err(|e| TraceError {
            line: 0,
            kind: TraceErrorKind::Io(format!("{}: {e}", path.as_ref().display())),
        })?;
        Self::read(io::BufReader::new(f))
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

    /// Live bytes (sum of requested sizes) after each event, one item per event.
    pub fn live_bytes(&self) -> LiveBytes<'_> {
        LiveBytes {
            events: self.events.iter(),
            sizes: HashMap::new(),
            live: 0,
            blocks: 0,
        }
    }

    /// The highest live-byte count and where it was first reached.
    pub fn peak(&self) -> Peak {
        let mut peak = Peak::default();
        let mut it = self.live_bytes();
        let mut i = 0;
        while let Some(live) = it.next() {
            if live > peak.live_bytes {
                peak = Peak {
                    live_bytes: live,
                    live_blocks: it.live_blocks(),
                    event_index: i,
                };
            }
            i += 1;
        }
        peak
    }

    /// Every block's life, in the order of allocation.
    pub fn lifetimes(&self) -> Vec<Lifetime> {
        let mut out: Vec<Lifetime> = Vec::new();
        let mut index: HashMap<u64, usize> = HashMap::new();
        for (i, e) in self.events.iter().enumerate() {
            match e.op {
                Op::Alloc => {
                    index.insert(e.id, out.len());
                    out.push(Lifetime {
                        id: e.id,
                        size: e.size,
                        align: e.align,
                        thread: e.thread,
                        alloc_index: i,
                        free_index: None,
                        free_thread: None,
                    });
                }
                Op::Free => {
                    let l = &mut out[index[&e.id]];
                    l.free_index = Some(i);
                    l.free_thread = Some(e.thread);
                }
            }
        }
        out
    }

    /// Counts over the whole trace.
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            events: self.events.len(),
            peak: self.peak(),
            ..Summary::default()
        };
        let mut threads = std::collections::HashSet::new();
        for e in &self.events {
            threads.insert(e.thread);
            s.duration_ns = s.duration_ns.max(e.t_ns);
            match e.op {
                Op::Alloc => {
                    s.allocs += 1;
                    s.bytes_allocated += e.size;
                    s.largest = s.largest.max(e.size);
                }
                Op::Free => s.frees += 1,
            }
        }
        s.threads = threads.len();
        for l in self.lifetimes() {
            match l.free_thread {
                Some(t) if t != l.thread => s.cross_thread_frees += 1,
                Some(_) => {}
                None => {
                    s.live_blocks_at_end += 1;
                    s.live_bytes_at_end += l.size;
                }
            }
        }
        s
    }
}

/// Iterator over live bytes after each event of a trace; see [`Trace::live_bytes`].
pub struct LiveBytes<'t> {
    events: std::slice::Iter<'t, Event>,
    sizes: HashMap<u64, u64>,
    live: u64,
    blocks: usize,
}

impl LiveBytes<'_> {
    /// Blocks live after the last event returned.
    pub fn live_blocks(&self) -> usize {
        self.blocks
    }
}

impl Iterator for LiveBytes<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let e = self.events.next()?;
        match e.op {
            Op::Alloc => {
                self.sizes.insert(e.id, e.size);
                self.live += e.size;
                self.blocks += 1;
            }
            Op::Free => {
                // A `Trace` is checked on construction: every free names a live block.
                let size = self.sizes.remove(&e.id).expect("checked trace");
                self.live -= size;
                self.blocks -= 1;
            }
        }
        Some(self.live)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.events.size_hint()
    }
}

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
