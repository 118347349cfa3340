//! The allocation history: a capped ring of allocation, free, trim and pressure events
//! with timestamps, kept while `MemoryManager::record_history(n)` is on and written into
//! snapshots.
//!
//! Off, it costs nothing of its own: the manager's hot paths already ask the event bus
//! whether anyone wants allocation events, and switching history on makes the bus say
//! yes, so allocations and frees take the paths that report them. On, each event costs a
//! lock of the ring, a read of the pool's live and committed bytes and, for allocations,
//! an entry in a map from block address to id (so that frees name their allocation).
#![deny(unsafe_code)]

use crate::device::DeviceId;
use crate::snapshot::{HistoryEntry, HistoryKind};
use crate::tracking::location_name;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::panic::Location;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Ids given to allocations the tracking layer did not record start here, so they never
/// meet tracking ids (which are 32-bit).
const OWN_IDS: u64 = 1 << 32;

/// One event as kept in the ring (sites as locations: formatted only for a snapshot).
#[derive(Debug, Clone)]
struct Entry {
    t_ns: u64,
    kind: HistoryKind,
    id: Option<u64>,
    size: u64,
    live: u64,
    reserved: u64,
    device: u8,
    pool: Option<&'static str>,
    site: Option<&'static Location<'static>>,
    detail: Option<String>,
}

impl Entry {
    fn block(
        e: &BlockEvent,
        kind: HistoryKind,
        id: u64,
        site: Option<&'static Location<'static>>,
    ) -> Self {
        Entry {
            t_ns: e.t_ns,
            kind,
            id: Some(id),
            size: e.size as u64,
            live: e.live as u64,
            reserved: e.reserved as u64,
            device: e.device.0,
            pool: Some(e.pool),
            site,
            detail: None,
        }
    }
}

/// What a live block allocated while history was on is known by.
#[derive(Debug, Clone, Copy)]
struct Known {
    id: u64,
    site: &'static Location<'static>,
}

#[derive(Default)]
struct Ring {
    cap: usize,
    entries: VecDeque<Entry>,
    dropped: u64,
    next_id: u64,
    known: HashMap<(u8, usize), Known>,
}

impl Ring {
    fn push(&mut self, e: Entry) {
        if self.entries.len() == self.cap {
            self.entries.pop_front();
            self.dropped += 1;
        }
        self.entries.push_back(e);
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        OWN_IDS + self.next_id
    }
}

/// The history of one manager.
#[derive(Default)]
pub(crate) struct History {
    on: AtomicBool,
    ring: Mutex<Ring>,
}

/// An allocation or free, as the manager reports it to the history.
pub(crate) struct BlockEvent {
    pub t_ns: u64,
    pub device: DeviceId,
    pub addr: usize,
    pub size: usize,
    /// The pool that served it: `"small"` or `"large"`.
    pub pool: &'static str,
    /// Tracking id, if tracked.
    pub tracked_id: Option<u32>,
    /// Live and committed bytes of the manager just after the event.
    pub live: usize,
    pub reserved: usize,
}

impl History {
    /// Whether history is being recorded.
    #[inline]
    pub fn is_on(&self) -> bool {
        self.on.load(Relaxed)
    }

    /// Keeps the last `cap` events from now on (`0`: stops and forgets). Entries kept
    /// so far stay when the ring only changes size (the oldest go when it shrinks).
    pub fn set_capacity(&self, cap: usize) {
        let mut r = self.ring.lock();
        r.cap = cap;
        while r.entries.len() > cap {
            r.entries.pop_front();
            r.dropped += 1;
        }
        if cap == 0 {
            *r = Ring::default();
        }
        self.on.store(cap > 0, Relaxed);
    }

    pub fn alloc(&self, e: BlockEvent, site: &'static Location<'static>) {
        let mut r = self.ring.lock();
        let id = e.tracked_id.map_or_else(|| r.fresh_id(), u64::from);
        r.known.insert((e.device.0, e.addr), Known { id, site });
        r.push(Entry::block(&e, HistoryKind::Alloc, id, Some(site)));
    }

    pub fn free(&self, e: BlockEvent) {
        let mut r = self.ring.lock();
        // Allocated while history was on: the id given then. Before: the tracking id,
        // or a fresh one (the report knows it was live before the history began).
        let id = match r.known.remove(&(e.device.0, e.addr)) {
            Some(k) => k.id,
            None => e.tracked_id.map_or_else(|| r.fresh_id(), u64::from),
        };
        r.push(Entry::block(&e, HistoryKind::Free, id, None));
    }

    /// A trim, a pressure change or a failed request (`kind` trim or pressure).
    #[allow(clippy::too_many_arguments)]
    pub fn mark(
        &self,
        t_ns: u64,
        kind: HistoryKind,
        device: DeviceId,
        size: usize,
        live: usize,
        reserved: usize,
        detail: String,
    ) {
        self.ring.lock().push(Entry {
            t_ns,
            kind,
            id: None,
            size: size as u64,
            live: live as u64,
            reserved: reserved as u64,
            device: device.0,
            pool: None,
            site: None,
            detail: Some(detail),
        });
    }

    /// Id and site of every live block allocated while history was on, by device and
    /// address.
    pub fn owners(&self) -> HashMap<(u8, usize), (u64, String)> {
        let r = self.ring.lock();
        r.known
            .iter()
            .map(|(&key, k)| (key, (k.id, location_name(k.site))))
            .collect()
    }

    /// A block moved (compaction): its id follows it.
    pub fn moved(&self, device: DeviceId, from: usize, to: usize) {
        if !self.is_on() {
            return;
        }
        let mut r = self.ring.lock();
        if let Some(k) = r.known.remove(&(device.0, from)) {
            r.known.insert((device.0, to), k);
        }
    }

    /// The entries, oldest first, and how many fell out of the ring.
    pub fn entries(&self) -> (Vec<HistoryEntry>, u64) {
        let r = self.ring.lock();
        let entries = r
            .entries
            .iter()
            .map(|e| HistoryEntry {
                t_ns: e.t_ns,
                kind: e.kind,
                id: e.id,
                size: e.size,
                live_bytes: e.live,
                reserved_bytes: e.reserved,
                device: u32::from(e.device),
                pool: e.pool.map(str::to_string),
                site: e.site.map(location_name),
                detail: e.detail.clone(),
            })
            .collect();
        (entries, r.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(addr: usize, size: usize, tracked_id: Option<u32>) -> BlockEvent {
        BlockEvent {
            t_ns: 1,
            device: DeviceId::CPU,
            addr,
            size,
            pool: "small",
            tracked_id,
            live: 0,
            reserved: 0,
        }
    }

    #[test]
    fn the_ring_keeps_the_last_entries_and_counts_the_dropped() {
        let h = History::default();
        assert!(!h.is_on());
        h.set_capacity(3);
        assert!(h.is_on());
        for a in 1..=5 {
            h.alloc(ev(a * 64, 64, None), Location::caller());
        }
        let (e, dropped) = h.entries();
        assert_eq!((e.len(), dropped), (3, 2));
        assert_eq!(e[0].id, Some(OWN_IDS + 3));
        h.set_capacity(0);
        assert!(!h.is_on());
        assert_eq!(h.entries(), (vec![], 0));
    }

    #[test]
    fn frees_name_the_allocation_by_address_and_tracked_ids_win() {
        let h = History::default();
        h.set_capacity(16);
        h.alloc(ev(64, 8, Some(7)), Location::caller());
        h.alloc(ev(128, 8, None), Location::caller());
        assert_eq!(h.owners().get(&(0, 64)).map(|o| o.0), Some(7));
        h.moved(DeviceId::CPU, 128, 256);
        h.free(ev(256, 8, None));
        h.free(ev(64, 8, Some(7)));
        // Live before the history began, untracked: a fresh id.
        h.free(ev(512, 8, None));
        let ids: Vec<_> = h.entries().0.iter().map(|e| e.id.unwrap()).collect();
        assert_eq!(ids, vec![7, OWN_IDS + 1, OWN_IDS + 1, 7, OWN_IDS + 2]);
        assert!(h.owners().is_empty());
    }
}
