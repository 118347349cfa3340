//! One event of a trace: what it does, to which block, from which thread, when.

use std::fmt;

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
