//! Fragmentation analysis of one device pool: where the reserved bytes that are not live
//! go (rounding inside live blocks, slab tails, thread caches, free blocks), how split up
//! the free memory is, and a histogram of free block sizes.
//!
//! The analysis works on a copy of the pool's layout ([`ClassLayout`] per size class, the
//! free block sizes of the large pool) so that locks are held only while copying; the
//! numbers are computed afterwards by [`analyze`], which is plain arithmetic and is tested
//! on hand-built layouts.
#![deny(unsafe_code)]

use super::strategy::SysVec;
use std::alloc::System;

use super::central::Central;
use std::fmt;

/// One power-of-two bucket of a [`SizeHistogram`]: blocks of `min_bytes ..= 2 * min_bytes - 1`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HistogramBucket {
    /// Smallest size in the bucket, in bytes (a power of two).
    pub min_bytes: usize,
    /// Free blocks in the bucket.
    pub blocks: usize,
    /// Their bytes.
    pub bytes: usize,
}

/// Free block sizes in power-of-two buckets; only non-empty buckets, smallest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SizeHistogram {
    /// The non-empty buckets in increasing size.
    pub buckets: Vec<HistogramBucket>,
}

impl SizeHistogram {
    /// The histogram of `sizes` (zero sizes are skipped: they are no block).
    pub fn from_sizes(sizes: impl IntoIterator<Item = usize>) -> Self {
        let mut by_log = [(0usize, 0usize); usize::BITS as usize];
        for s in sizes.into_iter().filter(|&s| s > 0) {
            let b = &mut by_log[s.ilog2() as usize];
            b.0 += 1;
            b.1 += s;
        }
        let buckets = by_log
            .iter()
            .enumerate()
            .filter(|(_, b)| b.0 > 0)
            .map(|(k, &(blocks, bytes))| HistogramBucket {
                min_bytes: 1 << k,
                blocks,
                bytes,
            })
            .collect();
        Self { buckets }
    }

    /// Free blocks counted.
    pub fn blocks(&self) -> usize {
        self.buckets.iter().map(|b| b.blocks).sum()
    }

    /// Bytes counted.
    pub fn bytes(&self) -> usize {
        self.buckets.iter().map(|b| b.bytes).sum()
    }
}

/// Free memory of the large pool (chunks served by the block strategy).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LargeFragmentation {
    /// Free bytes inside chunks.
    pub free_bytes: usize,
    /// Free blocks (neighbours are coalesced, so each is a maximal run).
    pub free_blocks: usize,
    /// Largest free block in bytes.
    pub largest_free: usize,
    /// External fragmentation: `1 - largest_free / free_bytes`, 0 when nothing is free.
    pub external: f64,
    /// Free block sizes.
    pub histogram: SizeHistogram,
}

/// Free memory of the small pool (slabs cut into size-class blocks), counted on the
/// central lists; blocks in thread caches are counted apart (`cached_bytes`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SmallFragmentation {
    /// Bytes of all slabs (as the large pool lent them).
    pub slab_bytes: usize,
    /// Bytes of blocks owned by allocations (class sizes).
    pub live_block_bytes: usize,
    /// Bytes of blocks held in thread caches.
    pub cached_bytes: usize,
    /// Bytes of blocks free on the central lists, including not yet carved ones.
    pub free_bytes: usize,
    /// Bytes at the end of slabs too small for one more block of the class.
    pub slab_tail_bytes: usize,
    /// Slabs all of whose blocks are on the central list: a trim gives them back.
    pub empty_slabs: usize,
    /// Bytes of those slabs.
    pub empty_slab_bytes: usize,
    /// Central free bytes in slabs that still hold a live or cached block: memory that
    /// neither another class nor the large pool can use until those blocks come back.
    pub stranded_bytes: usize,
    /// Largest run of adjacent free blocks inside one slab, in bytes.
    pub largest_free_run: usize,
    /// External fragmentation: `1 - largest_free_run / free_bytes`, 0 when nothing is free.
    pub external: f64,
    /// Sizes of the runs of adjacent free blocks inside slabs.
    pub histogram: SizeHistogram,
}

/// Fragmentation of one device pool. The byte fields partition the reserved bytes:
/// `live + rounding + slab tails + cached + small free + large free + other = reserved`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FragmentationReport {
    /// Requested bytes of live allocations.
    pub live_bytes: usize,
    /// Bytes of chunks mapped from the device (the device metrics' `mapped_bytes`: free
    /// blocks are counted whether or not their pages were handed back).
    pub reserved_bytes: usize,
    /// `live_bytes / reserved_bytes`, 1.0 when nothing is reserved.
    pub utilization: f64,
    /// Block bytes owned by allocations beyond the bytes requested: rounding up to a size
    /// class or to the strategy's granule.
    pub rounding_bytes: usize,
    /// Internal waste: `rounding_bytes` plus the small pool's slab tails.
    pub internal_waste_bytes: usize,
    /// Reserved bytes in none of the other parts (chunk ends below the strategy's
    /// granule; with several threads, counters read at slightly different moments).
    pub other_bytes: usize,
    /// The small pool.
    pub small: SmallFragmentation,
    /// The large pool.
    pub large: LargeFragmentation,
}

impl FragmentationReport {
    /// Reserved bytes that are not live: everything but `live_bytes`.
    pub fn overhead_bytes(&self) -> usize {
        self.reserved_bytes.saturating_sub(self.live_bytes)
    }
}

impl fmt::Display for FragmentationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::units::fmt_bytes as b;
        // `reserved_bytes` here is the mapped figure (see the field): name it so, and
        // print no utilization of nothing.
        let utilization = if self.reserved_bytes == 0 {
            "-".to_string()
        } else {
            format!("{:.1}%", 100.0 * self.utilization)
        };
        write!(
            f,
            "utilization {} ({} live of {} mapped); internal waste {} (rounding {}, slab \
             tails {}); small pool: {} cached, {} free ({} stranded in partly used slabs, {} in \
             empty slabs), largest free run {}, external fragmentation {:.1}%; large pool: {} free \
             in {} blocks, largest {}, external fragmentation {:.1}%",
            utilization,
            b(self.live_bytes),
            b(self.reserved_bytes),
            b(self.internal_waste_bytes),
            b(self.rounding_bytes),
            b(self.small.slab_tail_bytes),
            b(self.small.cached_bytes),
            b(self.small.free_bytes),
            b(self.small.stranded_bytes),
            b(self.small.empty_slab_bytes),
            b(self.small.largest_free_run),
            100.0 * self.small.external,
            b(self.large.free_bytes),
            self.large.free_blocks,
            b(self.large.largest_free),
            100.0 * self.large.external,
        )?;
        if !self.large.histogram.buckets.is_empty() {
            write!(f, "; large free blocks by size:")?;
            for bk in &self.large.histogram.buckets {
                write!(f, " >={}: {}", b(bk.min_bytes), bk.blocks)?;
            }
        }
        Ok(())
    }
}

/// A copy of one size class's state, taken under its lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassLayout {
    /// Block size of the class in bytes.
    pub block_size: usize,
    /// Slabs: `(address, bytes lent by the large pool, bytes cut into blocks)`.
    pub slabs: SysVec<(usize, usize, usize)>,
    /// Addresses of free blocks: the central list and the not yet carved blocks.
    pub free: SysVec<usize>,
    /// Blocks handed to threads (live or in thread caches).
    pub handed_out: usize,
    /// Of those, blocks in thread caches.
    pub cached: usize,
}

impl ClassLayout {
    /// Copies the state of `central`; `cached` blocks of it sit in thread caches. Runs
    /// under the class lock, so it allocates from the system allocator only (the pool may
    /// be the global allocator).
    pub(crate) fn capture(central: &Central, cached: usize) -> Self {
        let block_size = central.block_size();
        let (bump, bump_end) = central.uncarved();
        let mut free = SysVec::with_capacity_in(
            central.free_list().len() + (bump_end - bump) / block_size,
            System,
        );
        free.extend_from_slice(central.free_list());
        free.extend((bump..bump_end).step_by(block_size));
        let mut slabs = SysVec::with_capacity_in(central.slabs().len(), System);
        slabs.extend(
            central
                .slabs()
                .iter()
                .map(|s| (s.block.addr, s.block.size, s.size)),
        );
        Self {
            block_size,
            slabs,
            free,
            handed_out: central.handed_out,
            cached,
        }
    }
}

fn ratio_or(a: usize, b: usize, empty: f64) -> f64 {
    if b == 0 {
        empty
    } else {
        a as f64 / b as f64
    }
}

/// Analyzes the small pool from its classes.
pub fn analyze_small(classes: &mut [ClassLayout]) -> SmallFragmentation {
    let mut s = SmallFragmentation::default();
    let mut runs = Vec::new();
    for c in classes.iter_mut() {
        let bs = c.block_size;
        c.free.sort_unstable();
        c.slabs.sort_unstable();
        s.cached_bytes += c.cached * bs;
        s.live_block_bytes += c.handed_out.saturating_sub(c.cached) * bs;
        s.free_bytes += c.free.len() * bs;
        for &(addr, lent, used) in &c.slabs {
            s.slab_bytes += lent;
            s.slab_tail_bytes += lent - used;
            let lo = c.free.partition_point(|&a| a < addr);
            let hi = c.free.partition_point(|&a| a < addr + used);
            let in_slab = &c.free[lo..hi];
            if in_slab.len() * bs == used {
                s.empty_slabs += 1;
                s.empty_slab_bytes += lent;
            } else {
                s.stranded_bytes += in_slab.len() * bs;
            }
            let mut run = 0;
            let mut next = usize::MAX;
            for &a in in_slab {
                if a != next && run > 0 {
                    runs.push(run);
                    run = 0;
                }
                run += bs;
                next = a + bs;
            }
            if run > 0 {
                runs.push(run);
            }
        }
    }
    s.largest_free_run = runs.iter().copied().max().unwrap_or(0);
    s.external = 1.0 - ratio_or(s.largest_free_run, s.free_bytes, 1.0);
    s.histogram = SizeHistogram::from_sizes(runs);
    s
}

/// Analyzes the large pool from the sizes of its free blocks.
pub fn analyze_large(free_block_sizes: &[usize]) -> LargeFragmentation {
    let free_bytes: usize = free_block_sizes.iter().sum();
    let largest_free = free_block_sizes.iter().copied().max().unwrap_or(0);
    LargeFragmentation {
        free_bytes,
        free_blocks: free_block_sizes.len(),
        largest_free,
        external: 1.0 - ratio_or(largest_free, free_bytes, 1.0),
        histogram: SizeHistogram::from_sizes(free_block_sizes.iter().copied()),
    }
}

/// The report of a device pool with `live_bytes` requested bytes live, `reserved_bytes`
/// held from the device and `large_live_block_bytes` in live large blocks.
pub fn analyze(
    live_bytes: usize,
    reserved_bytes: usize,
    large_live_block_bytes: usize,
    classes: &mut [ClassLayout],
    large_free_block_sizes: &[usize],
) -> FragmentationReport {
    let small = analyze_small(classes);
    let large = analyze_large(large_free_block_sizes);
    let rounding_bytes =
        (small.live_block_bytes + large_live_block_bytes).saturating_sub(live_bytes);
    let accounted = live_bytes
        + rounding_bytes
        + small.slab_tail_bytes
        + small.cached_bytes
        + small.free_bytes
        + large.free_bytes;
    FragmentationReport {
        live_bytes,
        reserved_bytes,
        utilization: ratio_or(live_bytes, reserved_bytes, 1.0),
        rounding_bytes,
        internal_waste_bytes: rounding_bytes + small.slab_tail_bytes,
        other_bytes: reserved_bytes.saturating_sub(accounted),
        small,
        large,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sys_vec<T: Clone>(items: &[T]) -> SysVec<T> {
        let mut v = SysVec::new_in(System);
        v.extend_from_slice(items);
        v
    }

    #[test]
    fn histogram_buckets_are_powers_of_two() {
        let h = SizeHistogram::from_sizes([0, 1, 2, 3, 4096, 4097, 8191, 8192]);
        let rows: Vec<_> = h
            .buckets
            .iter()
            .map(|b| (b.min_bytes, b.blocks, b.bytes))
            .collect();
        assert_eq!(
            rows,
            [
                (1, 1, 1),
                (2, 2, 5),
                (4096, 3, 4096 + 4097 + 8191),
                (8192, 1, 8192)
            ]
        );
        assert_eq!(h.blocks(), 7);
    }

    #[test]
    fn small_pool_runs_stranded_and_empty_slabs() {
        // Class of 64 B; slab A (0x1000, 256 B lent, 4 blocks) has blocks 0 and 2 free;
        // slab B (0x2000, 272 B lent: 16 B of tail) is wholly free.
        let mut classes = [ClassLayout {
            block_size: 64,
            slabs: sys_vec(&[(0x2000, 272, 256), (0x1000, 256, 256)]),
            free: sys_vec(&[0x2040, 0x1080, 0x2000, 0x1000, 0x20c0, 0x2080]),
            handed_out: 2,
            cached: 1,
        }];
        let s = analyze_small(&mut classes);
        assert_eq!(s.slab_bytes, 528);
        assert_eq!(s.slab_tail_bytes, 16);
        assert_eq!(s.free_bytes, 6 * 64);
        assert_eq!(s.cached_bytes, 64);
        assert_eq!(s.live_block_bytes, 64);
        assert_eq!((s.empty_slabs, s.empty_slab_bytes), (1, 272));
        assert_eq!(s.stranded_bytes, 128);
        assert_eq!(s.largest_free_run, 256);
        assert!((s.external - (1.0 - 256.0 / 384.0)).abs() < 1e-12);
        assert_eq!(s.histogram.blocks(), 3, "runs: 64, 64, 256");
    }
}
