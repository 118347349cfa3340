//! Reading trace text: one line into an [`Event`], a whole file into a [`Trace`].

use super::{Event, Op, Trace, TraceError, TraceErrorKind, HEADER, MAX_TRACE_ALIGN};
use std::io::{self, BufRead};
use std::path::Path;

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

impl Trace {
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
}
