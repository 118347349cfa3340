//! How ops use threads: a private rayon pool, or none.
//!
//! Work is split by output rows only, and each row is computed by the same code whatever
//! the thread count, so results are bit-identical for 1 or N threads. Worker threads never
//! allocate tensor buffers: allocation stays on the calling thread.

use crate::error::{Error, Result};
use rayon::prelude::*;

/// Below this many inner-loop operations an op runs on the calling thread: waking the
/// pool costs more than it saves.
const MIN_PARALLEL_WORK: usize = 1 << 15;

/// The executor of ops: a thread count and, above one thread, a pool.
pub struct Exec {
    pool: Option<rayon::ThreadPool>,
}

impl Exec {
    /// Runs everything on the calling thread.
    pub fn sequential() -> Self {
        Exec { pool: None }
    }

    /// Runs ops on `threads` threads (1: the calling thread only).
    pub fn new(threads: usize) -> Result<Self> {
        if threads == 0 {
            return Err(Error::Config("threads must be at least 1".into()));
        }
        if threads == 1 {
            return Ok(Self::sequential());
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("bitnet-op-{i}"))
            .build()
            .map_err(|e| Error::Config(format!("cannot start {threads} threads: {e}")))?;
        Ok(Exec { pool: Some(pool) })
    }

    /// Number of threads ops run on.
    pub fn threads(&self) -> usize {
        self.pool.as_ref().map_or(1, |p| p.current_num_threads())
    }

    /// Calls `f(row, out_row)` for every row of `out` (rows of `row_len` elements, the last
    /// one shorter if `out.len()` is not a multiple), in parallel when the work
    /// (`work_per_row` operations per row) is worth it.
    pub fn for_rows<T: Send>(
        &self,
        out: &mut [T],
        row_len: usize,
        work_per_row: usize,
        f: impl Fn(usize, &mut [T]) + Sync,
    ) {
        let mut none: [(); 0] = [];
        self.for_rows2(out, row_len, &mut none, 0, work_per_row, |r, a, _| f(r, a));
    }

    /// As [`for_rows`](Self::for_rows), with a second slice split into rows alongside
    /// (`b_row` elements per row; 0 gives every call an empty slice): per-row scratch.
    pub fn for_rows2<A: Send, B: Send>(
        &self,
        a: &mut [A],
        a_row: usize,
        b: &mut [B],
        b_row: usize,
        work_per_row: usize,
        f: impl Fn(usize, &mut [A], &mut [B]) + Sync,
    ) {
        if a_row == 0 {
            return;
        }
        let rows = a.len().div_ceil(a_row);
        debug_assert!(b_row == 0 || b.len() >= rows * b_row);
        let run = |first: usize, a: &mut [A], b: &mut [B]| {
            for (i, ar) in a.chunks_mut(a_row).enumerate() {
                let br = if b_row == 0 {
                    &mut []
                } else {
                    &mut b[i * b_row..(i + 1) * b_row]
                };
                f(first + i, ar, br);
            }
        };
        match &self.pool {
            Some(pool) if rows > 1 && rows * work_per_row >= MIN_PARALLEL_WORK => {
                let threads = pool.current_num_threads();
                let per_task = rows.div_ceil(threads * 4).max(1);
                let b_task = if b_row == 0 {
                    usize::MAX
                } else {
                    per_task * b_row
                };
                pool.install(|| {
                    let a_chunks = a.par_chunks_mut(per_task * a_row);
                    if b_row == 0 {
                        a_chunks.enumerate().for_each(|(c, ac)| {
                            run(c * per_task, ac, &mut []);
                        });
                    } else {
                        a_chunks
                            .zip(b[..rows * b_row].par_chunks_mut(b_task))
                            .enumerate()
                            .for_each(|(c, (ac, bc))| run(c * per_task, ac, bc));
                    }
                });
            }
            _ => run(0, a, b),
        }
    }
}

impl std::fmt::Debug for Exec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exec")
            .field("threads", &self.threads())
            .finish()
    }
}
