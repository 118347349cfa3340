//! A trace file as a workload.

use super::{Stream, StreamBuilder};
use bitnet_memory::trace::{Op as TraceOp, Trace};
use std::collections::HashMap;
use std::path::Path;

/// Reads and checks the trace at `path` for a replay; an error names the file and says
/// what is wrong with it, including a trace with no events (nothing to replay, and every
/// figure per event would be a division by zero).
pub fn load_trace(path: &Path) -> Result<Trace, String> {
    let trace = Trace::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if trace.events().is_empty() {
        let what = match std::fs::metadata(path) {
            Ok(m) if m.len() == 0 => "the file is empty",
            _ => "only a header, blank lines or comments",
        };
        return Err(format!(
            "{}: the trace has no events ({what}): nothing to replay",
            path.display()
        ));
    }
    Ok(trace)
}

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
