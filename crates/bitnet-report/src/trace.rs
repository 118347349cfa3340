//! A small reader of allocation traces (`op,id,size,align,thread,t_ns`, see
//! `shared/traces/README.md`). Private on purpose: `bitnet_memory::trace` will offer the
//! shared parser, and this one can then be swapped for it.

use crate::error::{ReportError, Result};
use std::io::BufRead;

/// The header line of a trace file.
pub(crate) const HEADER: &str = "op,id,size,align,thread,t_ns";

/// Allocate or free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Alloc,
    Free,
}

/// One line of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceEvent {
    pub(crate) op: Op,
    pub(crate) id: u64,
    pub(crate) size: u64,
    pub(crate) align: u64,
    pub(crate) thread: u32,
    pub(crate) t_ns: u64,
    /// 1-based line in the file, for errors.
    pub(crate) line: usize,
}

/// Reads every event. The header line is optional; blank lines and `#` comments are
/// skipped. Checks the syntax of each line, not whether ids match up.
pub(crate) fn parse(input: impl BufRead, what: &str) -> Result<Vec<TraceEvent>> {
    let mut events = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|source| ReportError::Io {
            what: what.to_string(),
            source,
        })?;
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') || (events.is_empty() && text == HEADER) {
            continue;
        }
        events.push(parse_line(text, line_no)?);
    }
    Ok(events)
}

fn parse_line(text: &str, line: usize) -> Result<TraceEvent> {
    let bad = |message: String| ReportError::Trace { line, message };
    let fields: Vec<&str> = text.split(',').map(str::trim).collect();
    if fields.len() != 6 {
        return Err(bad(format!(
            "expected 6 fields `{HEADER}`, found {}: `{text}`",
            fields.len()
        )));
    }
    let op = match fields[0] {
        "a" => Op::Alloc,
        "f" => Op::Free,
        other => return Err(bad(format!("op must be `a` or `f`, found `{other}`"))),
    };
    let num = |idx: usize, name: &str| -> Result<u64> {
        fields[idx].parse::<u64>().map_err(|_| {
            bad(format!(
                "{name} must be a non-negative integer, found `{}`",
                fields[idx]
            ))
        })
    };
    let id = num(1, "id")?;
    let size = num(2, "size")?;
    let align = num(3, "align")?;
    let thread = u32::try_from(num(4, "thread")?)
        .map_err(|_| bad(format!("thread `{}` is out of range", fields[4])))?;
    let t_ns = num(5, "t_ns")?;
    if op == Op::Alloc && !align.is_power_of_two() {
        return Err(bad(format!(
            "align of an allocation must be a power of two, found {align}"
        )));
    }
    Ok(TraceEvent {
        op,
        id,
        size,
        align,
        thread,
        t_ns,
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_header_events_and_skips_blank_lines() {
        let text = "op,id,size,align,thread,t_ns\na,1,472,16,0,4215\n\nf,1,0,0,0,5000\r\n";
        let ev = parse(text.as_bytes(), "test").unwrap();
        assert_eq!(ev.len(), 2);
        assert_eq!(
            ev[0],
            TraceEvent {
                op: Op::Alloc,
                id: 1,
                size: 472,
                align: 16,
                thread: 0,
                t_ns: 4215,
                line: 2
            }
        );
        assert_eq!((ev[1].op, ev[1].line), (Op::Free, 4));
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let cases = [
            ("a,1,472,16,0\n", 1, "expected 6 fields"),
            (
                "op,id,size,align,thread,t_ns\na,1,x,16,0,1\n",
                2,
                "size must be",
            ),
            ("a,1,4,16,0,1\nm,2,4,16,0,2\n", 2, "op must be"),
            ("a,1,4,3,0,1\n", 1, "power of two"),
            ("a,1,4,16,-1,1\n", 1, "thread must be"),
        ];
        for (text, line, words) in cases {
            match parse(text.as_bytes(), "test") {
                Err(ReportError::Trace { line: l, message }) => {
                    assert_eq!(l, line, "{text:?}: {message}");
                    assert!(message.contains(words), "{text:?}: {message}");
                }
                other => panic!("{text:?}: expected a trace error, got {other:?}"),
            }
        }
    }
}
