//! The bins of TLSF: which (first level, second level) bin a block size maps to, and the
//! bitmap scans that find a non-empty bin in O(1).
#![deny(unsafe_code)]

use super::{Tlsf, GRANULE, NIL};

/// Bits of the second level: each power-of-two range splits into `1 << SL_BITS` bins.
pub(super) const SL_BITS: u32 = 4;
/// Bins per first level.
pub(super) const SL_COUNT: usize = 1 << SL_BITS;
/// First levels: one bit each of `Tlsf::fl_bitmap`.
pub(super) const FL_COUNT: usize = 64;

/// Index of the highest set bit of `x` (which is not 0).
fn log2(x: usize) -> u32 {
    usize::BITS - 1 - x.leading_zeros()
}

/// Bin of a free block of `size` bytes (rounding down: every block in the bin is at least
/// the bin's lower bound).
#[inline]
pub(super) fn mapping_insert(size: usize) -> (usize, usize) {
    let u = size / GRANULE;
    if u < SL_COUNT {
        (0, u)
    } else {
        let l = log2(u);
        let fl = (l - SL_BITS + 1) as usize;
        let sl = (u >> (l - SL_BITS)) - SL_COUNT;
        (fl, sl)
    }
}

/// First bin whose every block can serve `size` bytes (rounding up).
#[inline]
pub(super) fn mapping_search(size: usize) -> (usize, usize) {
    let u = size / GRANULE;
    if u < SL_COUNT {
        (0, u)
    } else {
        let r = u + (1 << (log2(u) - SL_BITS)) - 1;
        mapping_insert(r * GRANULE)
    }
}

/// Smallest block size that maps to bin `(fl, sl)`.
pub(super) fn bin_lower_bound(fl: usize, sl: usize) -> usize {
    if fl == 0 {
        sl * GRANULE
    } else {
        ((SL_COUNT + sl) << (fl - 1)) * GRANULE
    }
}

impl Tlsf {
    /// Head of the first free list whose every block holds `size` bytes (alignment
    /// aside), by two bitmap scans.
    pub(super) fn find_suitable(&self, size: usize) -> Option<u32> {
        let (fl, sl) = mapping_search(size);
        if fl >= FL_COUNT {
            return None;
        }
        let sl_map = self.sl_bitmap[fl] & (u32::MAX << sl);
        let (fl, sl_map) = if sl_map != 0 {
            (fl, sl_map)
        } else {
            let fl_map = if fl + 1 >= FL_COUNT {
                0
            } else {
                self.fl_bitmap & (u64::MAX << (fl + 1))
            };
            if fl_map == 0 {
                return None;
            }
            let fl = fl_map.trailing_zeros() as usize;
            (fl, self.sl_bitmap[fl])
        };
        let sl = sl_map.trailing_zeros() as usize;
        let idx = self.heads[fl][sl];
        debug_assert!(idx != NIL);
        Some(idx)
    }

    /// The next non-empty bin after `(fl, sl)`.
    pub(super) fn next_bin(&self, fl: usize, sl: usize) -> Option<(usize, usize)> {
        let sl_map = if sl + 1 < SL_COUNT {
            self.sl_bitmap[fl] & (u32::MAX << (sl + 1))
        } else {
            0
        };
        if sl_map != 0 {
            return Some((fl, sl_map.trailing_zeros() as usize));
        }
        let fl_map = if fl + 1 < FL_COUNT {
            self.fl_bitmap & (u64::MAX << (fl + 1))
        } else {
            0
        };
        if fl_map == 0 {
            return None;
        }
        let fl = fl_map.trailing_zeros() as usize;
        Some((fl, self.sl_bitmap[fl].trailing_zeros() as usize))
    }
}
