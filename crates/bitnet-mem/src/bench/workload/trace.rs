//! A trace file as a workload.

use super::{Stream, StreamBuilder};
use bitnet_memory::trace::{Op as TraceOp, Trace};
use std::collections::HashMap;

/// A trace as a stream: events in file order, on one thread; ids become slots. Blocks
/// still live at the end of the trace stay live (the runner frees them after timing).
pub fn from_trace(trace: &Trace) -> Stream {
    let mut b = StreamBuilder::new();
    let mut slot_of: HashMap<u64, u32> = HashMap::new();
    for e in trace.events() {
        match e.op {
            TraceOp::Alloc => {
                let s = b.alloc(e.size as usize, e.align as usize);
                slot_of.insert(e.id, s);
            }
            TraceOp::Free => {
                let s = slot_of
                    .remove(&e.id)
                    .expect("a checked trace frees only live blocks");
                b.free(s);
            }
        }
    }
    b.finish()
}
