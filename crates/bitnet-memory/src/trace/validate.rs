//! The consistency rules of a trace: frees name live blocks, ids are never reused.

use super::{Event, Op, TraceErrorKind, MAX_TRACE_ALIGN};
use std::collections::HashMap;

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
