//! The 16-byte record kept per tracked allocation, and the store that holds the records.
//!
//! Records live in fixed segments of slots, found by index, so recording and forgetting
//! take no lock and no hash: a thread takes slot indices in batches and an allocation
//! carries its slot index. Every slot is two atomic words so that reports may read them
//! from any thread while owners write.
#![deny(unsafe_code)]

use crate::pool::size_class;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Flags of a tracked allocation.
pub mod flags {
    /// The slot holds a live allocation.
    pub const LIVE: u8 = 1;
    /// Tracked because it is large (at or above the large threshold), not sampled.
    pub const LARGE: u8 = 2;
    /// Marked persistent (weights, KV cache): not a leak suspect when a scope ends.
    pub const PERSISTENT: u8 = 4;
    /// `size` is in MiB (the allocation is 4 GiB or more).
    pub const HUGE: u8 = 8;
    /// A backtrace was captured for it.
    pub const BACKTRACE: u8 = 16;
}

/// What is known of one tracked allocation: 16 bytes (the seed's
/// `CompactAllocationMetadata`, with the exact size in place of the size class, from which
/// the class follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[repr(C)]
pub struct CompactAllocationMetadata {
    /// Allocation id, unique within the manager.
    pub id: u32,
    /// Milliseconds since the manager started.
    pub timestamp_ms: u32,
    /// Requested size in bytes (in MiB with [`flags::HUGE`]).
    pub size: u32,
    /// Allocation site index (0: unknown), see [`SiteTable`](super::sites::SiteTable).
    pub site: u16,
    /// Device index.
    pub device: u8,
    /// [`flags`].
    pub flags: u8,
}

impl CompactAllocationMetadata {
    /// Packs `size` bytes into the record's size field and flags.
    pub fn encode_size(size: usize) -> (u32, u8) {
        match u32::try_from(size) {
            Ok(s) => (s, 0),
            Err(_) => ((size >> 20).min(u32::MAX as usize) as u32, flags::HUGE),
        }
    }

    /// Size in bytes (exact below 4 GiB, to the MiB above).
    pub fn size_bytes(&self) -> usize {
        if self.flags & flags::HUGE != 0 {
            (self.size as usize) << 20
        } else {
            self.size as usize
        }
    }

    /// The size class of the request (the pool's classes continue past the small pool).
    pub fn size_class(&self) -> usize {
        size_class::class_of(self.size_bytes().max(1))
    }

    fn to_words(self) -> (u64, u64) {
        (
            u64::from(self.id) | (u64::from(self.timestamp_ms) << 32),
            u64::from(self.size)
                | (u64::from(self.site) << 32)
                | (u64::from(self.device) << 48)
                | (u64::from(self.flags) << 56),
        )
    }

    fn from_words(w0: u64, w1: u64) -> Self {
        Self {
            id: w0 as u32,
            timestamp_ms: (w0 >> 32) as u32,
            size: w1 as u32,
            site: (w1 >> 32) as u16,
            device: (w1 >> 48) as u8,
            flags: (w1 >> 56) as u8,
        }
    }
}

const SEG_BITS: u32 = 12;
/// Slots of the first segment; segment `k` holds `SEG_SLOTS << k`.
const SEG_SLOTS: usize = 1 << SEG_BITS;
/// Segments: `SEG_SLOTS * (2^12 - 1)` slots in all, about 16 Mi.
const MAX_SEGMENTS: usize = 12;

/// The segment of slot `idx` and its index there: segment `k` starts at slot
/// `SEG_SLOTS * (2^k - 1)`.
#[inline]
fn locate(idx: u32) -> (usize, usize) {
    let k = (idx as usize >> SEG_BITS) + 1;
    let seg = (usize::BITS - 1 - k.leading_zeros()) as usize;
    (seg, idx as usize - seg_start(seg))
}

/// First slot of segment `seg`.
#[inline]
fn seg_start(seg: usize) -> usize {
    ((1 << seg) - 1) << SEG_BITS
}

#[derive(Default)]
struct Slot {
    w0: AtomicU64,
    w1: AtomicU64,
    /// Address of the block, beside the record: snapshots name blocks by it.
    addr: AtomicU64,
}

/// Slots for up to about 16 Mi live tracked allocations, in segments of 4096, 8192, ...
/// slots allocated as needed (a table of 12 segments: a new manager touches no slot).
pub struct MetadataStore {
    segments: Box<[OnceLock<Box<[Slot]>>]>,
    /// Free slot indices not held by any thread, and the number of segments in use.
    central: Mutex<(Vec<u32>, usize)>,
}

impl Default for MetadataStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MetadataStore {
    /// An empty store (no segment allocated until the first record).
    pub fn new() -> Self {
        Self {
            segments: (0..MAX_SEGMENTS).map(|_| OnceLock::new()).collect(),
            central: Mutex::new((Vec::new(), 0)),
        }
    }

    /// Moves up to `n` free slot indices into `out`; grows by a segment when none is free.
    /// Returns fewer (zero) only when the store is full.
    pub fn take_slots(&self, n: usize, out: &mut Vec<u32>) {
        let mut c = self.central.lock();
        if c.0.is_empty() && c.1 < MAX_SEGMENTS {
            let seg = c.1;
            let len = SEG_SLOTS << seg;
            self.segments[seg].get_or_init(|| (0..len).map(|_| Slot::default()).collect());
            c.1 += 1;
            let base = seg_start(seg) as u32;
            // Index 0 is never used, so that 0 can mean "untracked".
            c.0.extend((base..base + len as u32).rev().filter(|&i| i != 0));
        }
        let k = n.min(c.0.len());
        let at = c.0.len() - k;
        out.extend(c.0.drain(at..));
    }

    /// Returns slot indices.
    pub fn give_slots(&self, slots: impl Iterator<Item = u32>) {
        self.central.lock().0.extend(slots);
    }

    fn slot(&self, idx: u32) -> &Slot {
        let (seg, at) = locate(idx);
        let seg = self.segments[seg]
            .get()
            .expect("slot of an allocated segment");
        &seg[at]
    }

    /// Writes a record (with [`flags::LIVE`]) of the block at `addr` into slot `idx`.
    pub fn write(&self, idx: u32, meta: CompactAllocationMetadata, addr: usize) {
        let (w0, w1) = CompactAllocationMetadata {
            flags: meta.flags | flags::LIVE,
            ..meta
        }
        .to_words();
        let s = self.slot(idx);
        s.w0.store(w0, Ordering::Relaxed);
        s.addr.store(addr as u64, Ordering::Relaxed);
        // The live flag sits in w1, written last: a reader that sees it sees w0 too.
        s.w1.store(w1, Ordering::Release);
    }

    /// Clears slot `idx`; returns what it held.
    pub fn clear(&self, idx: u32) -> CompactAllocationMetadata {
        let s = self.slot(idx);
        let w1 = s.w1.swap(0, Ordering::AcqRel);
        let w0 = s.w0.load(Ordering::Relaxed);
        CompactAllocationMetadata::from_words(w0, w1)
    }

    /// Sets flag bits on a live record.
    pub fn set_flags(&self, idx: u32, f: u8) {
        self.slot(idx)
            .w1
            .fetch_or(u64::from(f) << 56, Ordering::AcqRel);
    }

    /// Reads a live record.
    pub fn read(&self, idx: u32) -> Option<CompactAllocationMetadata> {
        let s = self.slot(idx);
        let w1 = s.w1.load(Ordering::Acquire);
        let w0 = s.w0.load(Ordering::Relaxed);
        let m = CompactAllocationMetadata::from_words(w0, w1);
        (m.flags & flags::LIVE != 0).then_some(m)
    }

    /// Address of the block of the record in slot `idx` (meaningful while it is live).
    pub fn addr(&self, idx: u32) -> usize {
        self.slot(idx).addr.load(Ordering::Acquire) as usize
    }

    /// Points the live record in slot `idx` at a new address (its block moved).
    pub fn set_addr(&self, idx: u32, addr: usize) {
        self.slot(idx).addr.store(addr as u64, Ordering::Release);
    }

    /// Every live record with its slot.
    pub fn live(&self) -> Vec<(u32, CompactAllocationMetadata)> {
        let segs = self.central.lock().1;
        let mut out = Vec::new();
        for seg in 0..segs {
            let Some(slots) = self.segments[seg].get() else {
                continue;
            };
            for (i, _) in slots.iter().enumerate() {
                let idx = (seg_start(seg) + i) as u32;
                if let Some(m) = self.read(idx) {
                    out.push((idx, m));
                }
            }
        }
        out
    }

    /// Bytes the store occupies.
    pub fn memory_bytes(&self) -> usize {
        let c = self.central.lock();
        seg_start(c.1) * std::mem::size_of::<Slot>() + c.0.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_is_16_bytes_and_round_trips() {
        assert_eq!(std::mem::size_of::<CompactAllocationMetadata>(), 16);
        let m = CompactAllocationMetadata {
            id: 0xDEAD_BEEF,
            timestamp_ms: 123_456,
            size: 3 << 20,
            site: 777,
            device: 2,
            flags: flags::LARGE | flags::PERSISTENT,
        };
        let (w0, w1) = m.to_words();
        assert_eq!(CompactAllocationMetadata::from_words(w0, w1), m);
        assert_eq!(m.size_class(), size_class::class_of(3 << 20));
        let (s, f) = CompactAllocationMetadata::encode_size(5 << 30);
        let huge = CompactAllocationMetadata {
            size: s,
            flags: f,
            ..m
        };
        assert_eq!(huge.size_bytes(), 5 << 30);
    }

    #[test]
    fn slots_are_written_read_cleared_and_reused() {
        let store = MetadataStore::new();
        let mut slots = Vec::new();
        store.take_slots(10, &mut slots);
        assert_eq!(slots.len(), 10);
        assert!(!slots.contains(&0));
        let meta = CompactAllocationMetadata {
            id: 1,
            timestamp_ms: 2,
            size: 100,
            site: 0,
            device: 0,
            flags: 0,
        };
        store.write(slots[3], meta, 0x1000);
        assert_eq!(store.live().len(), 1);
        assert_eq!(store.addr(slots[3]), 0x1000);
        assert_eq!(store.read(slots[3]).unwrap().size, 100);
        assert_eq!(store.clear(slots[3]).id, 1);
        assert!(store.read(slots[3]).is_none());
        store.give_slots(slots.drain(..));
        assert!(store.memory_bytes() >= SEG_SLOTS * 16);
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "safe code over 28k slots (minutes under Miri); the test above covers the store there"
    )]
    fn segments_double_and_every_slot_has_one_place() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(4095), (0, 4095));
        assert_eq!(locate(4096), (1, 0));
        assert_eq!(locate(3 * 4096 - 1), (1, 8191));
        assert_eq!(locate(3 * 4096), (2, 0));
        let last = (seg_start(MAX_SEGMENTS) - 1) as u32;
        assert_eq!(
            locate(last),
            (MAX_SEGMENTS - 1, (SEG_SLOTS << (MAX_SEGMENTS - 1)) - 1)
        );
        assert!(seg_start(MAX_SEGMENTS) >= 16_000_000);
        // Three segments' worth of slots: every one distinct, writable and read back.
        let store = MetadataStore::new();
        let mut slots = Vec::new();
        while slots.len() < 7 * SEG_SLOTS - 1 {
            let before = slots.len();
            store.take_slots(1000, &mut slots);
            assert!(slots.len() > before);
        }
        let mut sorted = slots.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), slots.len());
        assert_eq!(*sorted.last().unwrap() as usize, 7 * SEG_SLOTS - 1);
        let meta = |id| CompactAllocationMetadata {
            id,
            timestamp_ms: 0,
            size: 8,
            site: 0,
            device: 0,
            flags: 0,
        };
        for &i in &slots {
            store.write(i, meta(i), i as usize);
        }
        let live = store.live();
        assert_eq!(live.len(), slots.len());
        assert!(live
            .iter()
            .all(|(i, m)| m.id == *i && store.addr(*i) == *i as usize));
        assert!(store.memory_bytes() >= 7 * SEG_SLOTS * std::mem::size_of::<Slot>());
    }
}
