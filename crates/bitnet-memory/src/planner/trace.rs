//! A small reader of allocation traces (`op,id,size,align,thread,t_ns`), private to the
//! planner: it turns the events into lifetime intervals and refuses bad lines with their
//! line number.
#![deny(unsafe_code)]

use super::Interval;
use std::collections::HashMap;

/// The header line of a trace file (optional).
const HEADER: &str = "op,id,size,align,thread,t_ns";

/// A trace line the planner cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trace line {line}: {reason}")]
pub struct TraceError {
    /// Line number, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

fn field<T: std::str::FromStr>(s: Option<&str>, name: &str) -> Result<T, String> {
    let s = s.ok_or_else(|| format!("missing field `{name}`"))?;
    s.trim()
        .parse()
        .map_err(|_| format!("field `{name}` is not a number: {s:?}"))
}

/// Reads a trace into intervals, one per allocated block, in allocation order.
///
/// Times are event positions (the n-th event of the file happens at time n), so the file
/// order is the order of the intervals' ends and starts; `t_ns` and `thread` are checked
/// but not used. A block never freed lives to the end (its `end` is the number of
/// events). An empty line is skipped; the header is optional.
pub fn parse_trace(text: &str) -> Result<Vec<Interval>, TraceError> {
    let mut intervals = Vec::new();
    let mut live: HashMap<u64, usize> = HashMap::new();
    let mut time = 0u64;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || (n == 0 && line.trim() == HEADER) {
            continue;
        }
        let err = |reason: String| TraceError {
            line: n + 1,
            reason,
        };
        let mut f = line.split(',');
        let op = f.next().unwrap_or("").trim();
        let id: u64 = field(f.next(), "id").map_err(err)?;
        let size: usize = field(f.next(), "size").map_err(err)?;
        let align: usize = field(f.next(), "align").map_err(err)?;
        let _thread: u32 = field(f.next(), "thread").map_err(err)?;
        let _t_ns: u64 = field(f.next(), "t_ns").map_err(err)?;
        if f.next().is_some() {
            return Err(err("more than 6 fields".into()));
        }
        match op {
            "a" => {
                if !align.is_power_of_two() {
                    return Err(err(format!("alignment {align} is not a power of two")));
                }
                if size > isize::MAX as usize - (align - 1) {
                    return Err(err(format!("size {size} too large")));
                }
                if live.insert(id, intervals.len()).is_some() {
                    return Err(err(format!("block {id} allocated while live")));
                }
                intervals.push(Interval {
                    id,
                    size,
                    align,
                    start: time,
                    end: u64::MAX,
                });
            }
            "f" => {
                let i = live
                    .remove(&id)
                    .ok_or_else(|| err(format!("free of block {id}, which is not live")))?;
                intervals[i].end = time;
            }
            other => return Err(err(format!("unknown op {other:?} (expected `a` or `f`)"))),
        }
        time += 1;
    }
    for &i in live.values() {
        intervals[i].end = time;
    }
    Ok(intervals)
}
