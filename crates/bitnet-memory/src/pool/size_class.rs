//! Size classes of the small-block pool.
//!
//! Classes step by 8 B from 16 B to 64 B, then four classes per power of two (like
//! jemalloc): `2^k * 1.25, 1.5, 1.75, 2`. A request is rounded up to its class, so a class
//! wastes on average half a step: at most 12.5% of the class for every class from 32 B
//! up (10% or less above 64 B); 24 B wastes 16.7% and 16 B, the smallest class, whatever
//! smaller requests leave.
//!
//! A block of class `c` lies at `slab base + i * c` with slab bases aligned to
//! [`SLAB_ALIGN`], so it is aligned to the largest power of two dividing `c` (capped at
//! `SLAB_ALIGN`). Serving `(size, align)` from `class_of(round_up(size, align))` is
//! therefore always aligned: that class is a multiple of `align` (see `tests`).
#![deny(unsafe_code)]

/// Alignment of every slab's base address; also the largest alignment the small pool
/// serves.
pub const SLAB_ALIGN: usize = 4096;
/// Smallest class.
pub const MIN_CLASS: usize = 16;
/// Number of classes below 64 B (16, 24, ..., 64).
const LINEAR: usize = 7;
/// The largest class there can be (classes above the configured threshold go unused).
pub const MAX_CLASSES: usize = LINEAR + 4 * (usize::BITS as usize - 8);

/// Index of the class that serves `size` bytes (`size >= 1`).
#[inline]
pub fn class_of(size: usize) -> usize {
    if size <= 64 {
        (size.max(MIN_CLASS) - MIN_CLASS).div_ceil(8)
    } else {
        let s = size - 1;
        let k = (usize::BITS - 1 - s.leading_zeros()) as usize; // 2^k <= s < 2^(k+1), k >= 6
        let i = (s - (1 << k)) >> (k - 2);
        LINEAR + (k - 6) * 4 + i
    }
}

/// Size in bytes of class `idx`.
#[inline]
pub const fn class_size(idx: usize) -> usize {
    if idx < LINEAR {
        MIN_CLASS + 8 * idx
    } else {
        let j = idx - LINEAR;
        let k = 6 + j / 4;
        (1 << k) + ((j % 4) + 1) * (1 << (k - 2))
    }
}

/// Alignment every block of class `idx` has.
#[inline]
pub const fn class_align(idx: usize) -> usize {
    let s = class_size(idx);
    let a = 1 << s.trailing_zeros();
    if a > SLAB_ALIGN {
        SLAB_ALIGN
    } else {
        a
    }
}

/// Number of classes needed to serve every size up to `threshold`.
pub fn classes_for_threshold(threshold: usize) -> usize {
    if threshold < MIN_CLASS {
        0
    } else {
        class_of(threshold) + 1
    }
}

/// Classes of at least this size have one-block slabs: each block is its own best-fit
/// block, handed back to the large pool as soon as no thread caches it, so big classes
/// hold no partly used slabs.
pub const SINGLE_BLOCK_CLASS: usize = 64 * 1024;

/// Bytes of one slab of class `idx`: a whole number of blocks, at least 64 KiB and four
/// blocks for classes under 64 KiB, one block from 64 KiB up.
pub fn slab_size(idx: usize) -> usize {
    let c = class_size(idx);
    if c >= SINGLE_BLOCK_CLASS {
        return c;
    }
    let target = (c * 4).max(64 * 1024);
    (target / c) * c
}

/// Whether class `idx` has one-block slabs.
pub fn is_single(idx: usize) -> bool {
    class_size(idx) >= SINGLE_BLOCK_CLASS
}

/// How many blocks of class `idx` a thread may cache: at most `bytes` worth and at most
/// 128 blocks. Blocks bigger than `bytes` are not cached: one cached block of each big
/// class would keep megabytes resident that no request of that class may come back for.
pub fn cache_capacity(idx: usize, bytes: usize) -> usize {
    (bytes / class_size(idx)).min(128)
}

/// How far a thread's cache of class `idx` may grow while the class keeps missing (see
/// `pool::thread_cache`): `growth` times the base's bytes, at most 128 blocks,
/// never below the base; a class the base does not cache stays uncached.
pub fn cache_max(idx: usize, bytes: usize, growth: usize) -> usize {
    let base = cache_capacity(idx, bytes);
    if base == 0 {
        return 0;
    }
    (growth.saturating_mul(bytes) / class_size(idx)).clamp(base, 128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "pure arithmetic, too slow under Miri")]
    fn class_of_and_class_size_agree_on_every_size_up_to_2mib() {
        let mut prev_class = 0;
        for size in 1..=(2 << 20) {
            let c = class_of(size);
            let cs = class_size(c);
            assert!(cs >= size, "size {size} class {c} ({cs} B) too small");
            if c > 0 {
                assert!(class_size(c - 1) < size, "size {size} fits a smaller class");
            }
            assert!(
                c == prev_class || c == prev_class + 1,
                "classes skip at {size}"
            );
            prev_class = c;
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "pure arithmetic, too slow under Miri")]
    fn boundaries_plus_minus_one() {
        for idx in 0..classes_for_threshold(1 << 20) {
            let cs = class_size(idx);
            assert_eq!(class_of(cs), idx);
            assert_eq!(class_of(cs + 1), idx + 1, "just above class {idx}");
            if cs > MIN_CLASS {
                assert!(class_of(cs - 1) <= idx);
            }
        }
        assert_eq!(class_size(classes_for_threshold(1 << 20) - 1), 1 << 20);
    }

    #[test]
    #[cfg_attr(miri, ignore = "pure arithmetic, too slow under Miri")]
    fn average_rounding_waste_per_class() {
        let n = classes_for_threshold(1 << 20);
        let mut total = 0.0;
        for idx in 1..n {
            let (lo, hi) = (class_size(idx - 1) + 1, class_size(idx));
            let mean_req = (lo + hi) as f64 / 2.0;
            let waste = (hi as f64 - mean_req) / hi as f64;
            total += waste;
            if hi >= 32 {
                assert!(waste <= 0.125 + 1e-9, "class {hi} wastes {waste}");
            }
        }
        let avg = total / (n - 1) as f64;
        assert!(avg <= 0.125, "average waste {avg}");
    }

    #[test]
    #[cfg_attr(miri, ignore = "pure arithmetic, too slow under Miri")]
    fn a_rounded_request_lands_on_an_aligned_class() {
        let mut align = 1;
        while align <= SLAB_ALIGN {
            for size in (1usize..70_000).step_by(7) {
                let c = class_of(size.next_multiple_of(align));
                assert_eq!(class_size(c) % align, 0, "size {size} align {align}");
                assert!(class_align(c) >= align);
            }
            align *= 2;
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "pure arithmetic, too slow under Miri")]
    fn slabs_hold_whole_blocks() {
        for idx in 0..classes_for_threshold(1 << 30) {
            let s = slab_size(idx);
            assert_eq!(s % class_size(idx), 0);
            assert!(s >= class_size(idx));
            assert_eq!(cache_capacity(idx, 0), 0);
            let cap = cache_capacity(idx, 256 << 10);
            assert!(cap * class_size(idx) <= 256 << 10 && cap <= 128);
            assert_eq!(cap == 0, class_size(idx) > 256 << 10);
            assert_eq!(
                is_single(idx),
                s == class_size(idx) && class_size(idx) >= SINGLE_BLOCK_CLASS
            );
        }
    }
}
