//! [`LeakCheck`]: "nothing leaked between here and there", for tests.

use super::MemoryManager;
use crate::error::{MemoryError, Result};
use crate::leak::{report, Counts, LeakReport};
use std::collections::HashSet;

/// A leak check over one manager.
///
/// The check belongs to one manager and keeps no global state, so any number of tests in
/// one binary may run checks at once on managers of their own (dhat allows one profiler
/// per process).
///
/// What it means, exactly: at [`assert_no_leaks`](LeakCheck::assert_no_leaks), for every
/// device and size class (and the large pool) the pool's exact count of live blocks is
/// at most what it was at [`start`](LeakCheck::start), live requested bytes are at most
/// what they were, and no tracked allocation made since the start is still live. The
/// counts cover every thread that uses the manager, so threads working for the test must
/// be joined (or otherwise finished) before the check; a thread still running may be
/// caught between its allocation and its free. An old block freed while a new untracked
/// one of the same class leaks nets out in the counts; with full tracking the record
/// of the new one still shows it, so the check is exact there.
///
/// **Whole heap.** Over the manager of a [`PoolAlloc`](crate::adapters::PoolAlloc) that
/// is the global allocator, the check sees every allocation of the program; the
/// baseline's own storage (pool blocks too) is counted in the baseline, so a program that
/// leaks nothing gets a clean report. Every thread's allocations count, libtest's too:
/// run such a check in a test binary with `harness = false` (`tests/whole_heap.rs`), and
/// wrap the pool in [`StatsAlloc`](crate::adapters::StatsAlloc) for exact block and byte
/// counts and peaks.
///
/// ```
/// use bitnet_memory::{LeakCheck, MemoryConfig, MemoryManager};
/// use std::alloc::Layout;
///
/// let mm = MemoryManager::new(MemoryConfig::default())?;
/// let check = LeakCheck::start(&mm);
/// let a = mm.allocate(Layout::from_size_align(100, 8)?);
/// drop(a);
/// check.assert_no_leaks();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LeakCheck<'m> {
    mm: &'m MemoryManager,
    start: Counts,
    tracked: HashSet<u32>,
}

impl<'m> LeakCheck<'m> {
    /// Takes the baseline: exact live counts and the live tracked allocations.
    pub fn start(mm: &'m MemoryManager) -> Self {
        let cx = mm.inner.leak_cx();
        let tracked = cx.tracker.live().into_iter().map(|(_, m)| m.id).collect();
        Self {
            mm,
            // Read last, including its own storage: with `PoolAlloc` as the global
            // allocator the baseline's map is made of pool blocks (issue 23: three blocks,
            // 704 B, of false leak).
            start: Counts::now_including_self(&cx),
            tracked,
        }
    }

    /// What was left behind since the start: tracked allocations by site, the untracked
    /// rest as exact per-class counts.
    pub fn leaks(&self) -> LeakReport {
        let cx = self.mm.inner.leak_cx();
        let now = Counts::now(&cx);
        let fresh = cx
            .tracker
            .live()
            .into_iter()
            .map(|(_, m)| m)
            .filter(|m| !self.tracked.contains(&m.id));
        let mut r = report::build(&cx, &now, Some(&self.start), fresh);
        if r.allocations == 0 && now.live_bytes > self.start.live_bytes {
            // Same blocks, more bytes: only possible when blocks changed hands; say so.
            r.bytes = now.live_bytes - self.start.live_bytes;
        }
        r
    }

    /// `Ok` when nothing was left behind, else [`MemoryError::MemoryLeakDetected`].
    pub fn result(&self) -> Result<()> {
        let r = self.leaks();
        if r.allocations == 0 && r.bytes == 0 {
            Ok(())
        } else {
            Err(MemoryError::MemoryLeakDetected {
                leak_count: r.allocations,
                memory_size: r.bytes,
            })
        }
    }

    /// Panics with the report when anything was left behind since the start.
    #[track_caller]
    pub fn assert_no_leaks(&self) {
        let r = self.leaks();
        if r.allocations != 0 || r.bytes != 0 {
            panic!("memory leaked since LeakCheck::start: {r}");
        }
    }
}

/// Runs a block between [`LeakCheck::start`] and
/// [`LeakCheck::assert_no_leaks`] on a manager; evaluates to the block's value.
///
/// ```
/// use bitnet_memory::{assert_no_leaks, MemoryConfig, MemoryManager};
/// use std::alloc::Layout;
///
/// let mm = MemoryManager::new(MemoryConfig::default())?;
/// let n = assert_no_leaks!(&mm, {
///     let a = mm.allocate(Layout::from_size_align(64, 8)?);
///     a.len()
/// });
/// assert_eq!(n, 64);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[macro_export]
macro_rules! assert_no_leaks {
    ($mm:expr, $body:block) => {{
        let __check = $crate::LeakCheck::start($mm);
        let __value = $body;
        __check.assert_no_leaks();
        __value
    }};
}
