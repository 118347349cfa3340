//! Which pages of the large pool's chunks may be resident: one bit per page.
//!
//! A page becomes resident when a block over it is handed out (its owner may touch all
//! of it) and stops being resident when a purge hands it back. Free blocks that were
//! merged, split and partly purged leave resident pages in any pattern; counting them
//! page by page keeps the pool's committed figure equal to what the process holds (when
//! owners touch what they ask for), so purges hand back what is over the limit, no more.

#![deny(unsafe_code)]

use super::strategy::SysVec;
use std::alloc::System;

/// Page size the map counts in.
pub const PAGE: usize = 4096;

/// The page map of every chunk, by chunk id.
pub struct ResidentPages {
    maps: SysVec<SysVec<u64>>,
    pages: usize,
}

impl Default for ResidentPages {
    fn default() -> Self {
        Self::new()
    }
}

/// Page range `[first, end)` touched by any byte of `(offset, len)`.
fn pages_over(offset: usize, len: usize) -> (usize, usize) {
    (offset / PAGE, (offset + len).div_ceil(PAGE))
}

/// Whether page `p` is marked in `map`.
fn is_set(map: &[u64], p: usize) -> bool {
    map[p / 64] >> (p % 64) & 1 == 1
}

/// Bits `[lo, hi)` of word `w` (0 <= lo < hi <= 64) as a mask.
fn mask(lo: usize, hi: usize) -> u64 {
    let upper = if hi == 64 { u64::MAX } else { (1u64 << hi) - 1 };
    upper & !((1u64 << lo) - 1)
}

impl ResidentPages {
    /// No chunks.
    pub fn new() -> Self {
        Self {
            maps: SysVec::new_in(System),
            pages: 0,
        }
    }

    /// Bytes of pages marked resident.
    pub fn bytes(&self) -> usize {
        self.pages * PAGE
    }

    /// Starts the map of a fresh chunk (nothing resident).
    pub fn add_chunk(&mut self, id: u32, size: usize) {
        let id = id as usize;
        if self.maps.len() <= id {
            self.maps.resize_with(id + 1, || SysVec::new_in(System));
        }
        let words = size.div_ceil(PAGE).div_ceil(64);
        let map = &mut self.maps[id];
        debug_assert!(map.iter().all(|&w| w == 0), "chunk id {id} reused dirty");
        map.clear();
        map.resize(words, 0);
    }

    /// Drops the map of a chunk given back to the device.
    pub fn remove_chunk(&mut self, id: u32) {
        let map = &mut self.maps[id as usize];
        self.pages -= map.iter().map(|w| w.count_ones() as usize).sum::<usize>();
        map.clear();
    }

    /// Calls `f(word index, mask)` for each word the page range `[first, end)` covers.
    fn for_words(first: usize, end: usize, mut f: impl FnMut(usize, u64)) {
        let mut p = first;
        while p < end {
            let (w, lo) = (p / 64, p % 64);
            let hi = (end - w * 64).min(64);
            f(w, mask(lo, hi));
            p = w * 64 + hi;
        }
    }

    /// Bytes of resident pages wholly inside `(offset, len)` of chunk `id`.
    pub fn resident_in(&self, id: u32, offset: usize, len: usize) -> usize {
        let map = &self.maps[id as usize];
        let (first, end) = (offset.div_ceil(PAGE), (offset + len) / PAGE);
        let mut n = 0;
        Self::for_words(first, end, |w, m| n += (m & map[w]).count_ones() as usize);
        n * PAGE
    }

    /// Bytes of pages a touch of `(offset, len)` of chunk `id` would make resident.
    pub fn untouched(&self, id: u32, offset: usize, len: usize) -> usize {
        let map = &self.maps[id as usize];
        let (first, end) = pages_over(offset, len);
        let mut n = 0;
        Self::for_words(first, end, |w, m| n += (m & !map[w]).count_ones() as usize);
        n * PAGE
    }

    /// Marks the pages a touch of `(offset, len)` of chunk `id` makes resident; returns
    /// the bytes that were not.
    pub fn touch(&mut self, id: u32, offset: usize, len: usize) -> usize {
        let (first, end) = pages_over(offset, len);
        let map = &mut self.maps[id as usize];
        let mut n = 0;
        Self::for_words(first, end, |w, m| {
            n += (m & !map[w]).count_ones() as usize;
            map[w] |= m;
        });
        self.pages += n;
        n * PAGE
    }

    /// Hands back resident pages wholly inside `(offset, len)` of chunk `id`, from the
    /// range's end backwards (allocation carves free blocks from the front), run by run
    /// through `decommit(offset, len)`, which returns whether the pages went back; stops
    /// once `want` bytes went back. Returns the bytes that did.
    pub fn purge(
        &mut self,
        id: u32,
        (offset, len): (usize, usize),
        want: usize,
        decommit: &mut dyn FnMut(usize, usize) -> bool,
    ) -> usize {
        let first = offset.div_ceil(PAGE);
        let end = (offset + len) / PAGE;
        let want = want.div_ceil(PAGE);
        let map = &mut self.maps[id as usize];
        let mut purged = 0;
        // `p` is one past the page looked at next.
        let mut p = end;
        while p > first && purged < want {
            if !is_set(map, p - 1) {
                // Skip clear words whole.
                if p.is_multiple_of(64) && p - first >= 64 && map[p / 64 - 1] == 0 {
                    p -= 64;
                } else {
                    p -= 1;
                }
                continue;
            }
            let stop = p;
            while p > first && is_set(map, p - 1) && stop - p < want - purged {
                p -= 1;
            }
            if decommit(p * PAGE, (stop - p) * PAGE) {
                Self::for_words(p, stop, |w, m| map[w] &= !m);
                purged += stop - p;
            }
        }
        self.pages -= purged;
        purged * PAGE
    }

    /// Calls `f(offset, len)` for each run of pages of `(offset, len)` of chunk `id` not
    /// marked resident (the whole pages under the range), in address order.
    pub fn untouched_runs(
        &self,
        id: u32,
        offset: usize,
        len: usize,
        f: &mut dyn FnMut(usize, usize),
    ) {
        let map = &self.maps[id as usize];
        let (first, end) = pages_over(offset, len);
        let mut p = first;
        while p < end {
            if is_set(map, p) {
                p += 1;
                continue;
            }
            let start = p;
            while p < end && !is_set(map, p) {
                p += 1;
            }
            f(start * PAGE, (p - start) * PAGE);
        }
    }

    /// Panics unless the page count matches the maps.
    pub fn check(&self) {
        let n: usize = self
            .maps
            .iter()
            .flatten()
            .map(|w| w.count_ones() as usize)
            .sum();
        assert_eq!(n, self.pages, "resident page count drifted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_counts_new_pages_once() {
        let mut r = ResidentPages::new();
        r.add_chunk(0, 1 << 20);
        assert_eq!(r.touch(0, 100, 10), PAGE, "a partial page is a whole page");
        assert_eq!(r.touch(0, 0, PAGE), 0);
        assert_eq!(r.untouched(0, 0, 3 * PAGE + 1), 3 * PAGE);
        assert_eq!(r.touch(0, 0, 3 * PAGE + 1), 3 * PAGE);
        assert_eq!(r.bytes(), 4 * PAGE);
        // Across word boundaries.
        assert_eq!(r.touch(0, 60 * PAGE, 70 * PAGE), 70 * PAGE);
        assert_eq!(r.bytes(), 74 * PAGE);
        r.check();
    }

    #[test]
    fn purge_hands_back_whole_inner_pages_run_by_run_from_the_end() {
        let mut r = ResidentPages::new();
        r.add_chunk(3, 1 << 20);
        r.touch(3, 0, 10 * PAGE);
        r.touch(3, 20 * PAGE, 200 * PAGE);
        let mut runs = Vec::new();
        // The range starts inside page 1 and ends inside page 149: pages 2..149 go.
        let got = r.purge(3, (PAGE + 8, 148 * PAGE), usize::MAX, &mut |o, l| {
            runs.push((o / PAGE, l / PAGE));
            true
        });
        assert_eq!(runs, vec![(20, 129), (2, 8)]);
        assert_eq!(got, 137 * PAGE);
        assert_eq!(r.bytes(), (210 - 137) * PAGE);
        assert_eq!(r.resident_in(3, 0, 2 * PAGE), 2 * PAGE);
        assert_eq!(r.untouched(3, 2 * PAGE, PAGE), PAGE);
        r.check();
    }

    #[test]
    fn a_purge_stops_once_it_has_what_it_wants() {
        let mut r = ResidentPages::new();
        r.add_chunk(0, 1 << 20);
        r.touch(0, 0, 200 * PAGE);
        let mut runs = Vec::new();
        let got = r.purge(0, (0, 1 << 20), 3 * PAGE - 1, &mut |o, l| {
            runs.push((o / PAGE, l / PAGE));
            true
        });
        assert_eq!((got, runs), (3 * PAGE, vec![(197, 3)]));
        assert_eq!(r.bytes(), 197 * PAGE);
        r.check();
    }

    #[test]
    fn a_refused_decommit_keeps_the_pages_counted() {
        let mut r = ResidentPages::new();
        r.add_chunk(0, 1 << 20);
        r.touch(0, 0, 16 * PAGE);
        assert_eq!(r.purge(0, (0, 16 * PAGE), usize::MAX, &mut |_, _| false), 0);
        assert_eq!(r.bytes(), 16 * PAGE);
        r.remove_chunk(0);
        assert_eq!(r.bytes(), 0);
        r.add_chunk(0, 1 << 20);
        assert_eq!(r.untouched(0, 0, 16 * PAGE), 16 * PAGE);
        r.check();
    }
}
