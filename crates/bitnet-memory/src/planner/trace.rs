//! Traces into lifetime intervals. The lines are read by [`crate::trace::Reader`], the one
//! reader of the format; the planner adds its own rules about blocks (an id may be reused
//! once its block is freed) and refuses a bad line with its line number.
#![deny(unsafe_code)]

use super::Interval;
use crate::trace::{self, LineEvent, Op};
use std::collections::HashMap;

/// A trace line the planner cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trace line {line}: {reason}")]
pub struct TraceError {
    /// Line number, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

impl From<trace::TraceError> for TraceError {
    /// A line the trace reader refused: same line, the reader's reason.
    fn from(e: trace::TraceError) -> Self {
        Self {
            line: e.line,
            reason: e.kind.to_string(),
        }
    }
}

/// Reads a trace into intervals, one per allocated block, in allocation order.
///
/// Times are event positions (the n-th event of the file happens at time n), so the file
/// order is the order of the intervals' ends and starts; `t_ns` and `thread` are checked
/// but not used. A block never freed lives to the end (its `end` is the number of
/// events). Lines are read as [`crate::trace`] reads them: the header is optional, blank
/// lines and `#` comments are skipped. An id may be allocated again after its free.
pub fn parse_trace(text: &str) -> Result<Vec<Interval>, TraceError> {
    let mut intervals = Vec::new();
    let mut live: HashMap<u64, usize> = HashMap::new();
    let mut time = 0u64;
    for item in trace::Reader::new(text.as_bytes()) {
        let LineEvent { line, event: e } = item?;
        let err = |reason: String| TraceError { line, reason };
        match e.op {
            Op::Alloc => {
                // The reader has checked that the alignment is a power of two of at most
                // 2^30 and that the size is at most `isize::MAX`: both fit a usize.
                let (size, align) = (e.size as usize, e.align as usize);
                if size > isize::MAX as usize - (align - 1) {
                    return Err(err(format!("size {size} too large")));
                }
                if live.insert(e.id, intervals.len()).is_some() {
                    return Err(err(format!("block {} allocated while live", e.id)));
                }
                intervals.push(Interval {
                    id: e.id,
                    size,
                    align,
                    start: time,
                    end: u64::MAX,
                });
            }
            Op::Free => {
                let i = live
                    .remove(&e.id)
                    .ok_or_else(|| err(format!("free of block {}, which is not live", e.id)))?;
                intervals[i].end = time;
            }
        }
        time += 1;
    }
    for &i in live.values() {
        intervals[i].end = time;
    }
    Ok(intervals)
}
