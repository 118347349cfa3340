//! The resource lifecycle registry: things the manager does not allocate but should
//! account and clean (a mapped weights file, a staging buffer, a cache another library
//! holds), each with its size, device, site, a cleanup callback, a priority and whether
//! the manager may drop it under pressure.
//!
//! [`MemoryManager::register_resource`](crate::MemoryManager::register_resource) returns
//! a [`ResourceHandle`]; the resource shows in `metrics()` (`resources`), in leak reports
//! and snapshots (`resources`), and as events (`ResourceRegistered`,
//! `ResourceReleased`). An emergency cleanup runs the callbacks of the droppable ones,
//! lowest priority first. Dropping the handle unregisters the resource without running
//! its callback (its owner freed it); [`ResourceHandle::release`] runs the callback.
#![deny(unsafe_code)]

use crate::device::DeviceId;
use crate::events::{EventBus, EventKind, MemoryEvent};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A cleanup callback: frees the resource; runs at most once, on the thread that
/// releases it, with no lock of the manager held.
pub type CleanupCallback = Box<dyn FnOnce() + Send>;

/// What to register: build with [`Resource::new`] and the setters.
pub struct Resource {
    name: String,
    size: usize,
    device: DeviceId,
    priority: i32,
    droppable: bool,
    cleanup: Option<CleanupCallback>,
}

impl std::fmt::Debug for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resource")
            .field("name", &self.name)
            .field("size", &self.size)
            .field("device", &self.device)
            .field("priority", &self.priority)
            .field("droppable", &self.droppable)
            .finish()
    }
}

impl Resource {
    /// A resource named `name` of `size` bytes on the CPU, priority 0, not droppable,
    /// without a callback.
    pub fn new(name: impl Into<String>, size: usize) -> Self {
        Self {
            name: name.into(),
            size,
            device: DeviceId::CPU,
            priority: 0,
            droppable: false,
            cleanup: None,
        }
    }

    /// The device whose memory it holds.
    pub fn device(mut self, device: DeviceId) -> Self {
        self.device = device;
        self
    }

    /// Higher is kept longer: under pressure the lowest priorities go first.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Whether the manager may release it under pressure (through its callback).
    pub fn droppable(mut self, on: bool) -> Self {
        self.droppable = on;
        self
    }

    /// What frees it.
    pub fn on_cleanup(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.cleanup = Some(Box::new(f));
        self
    }
}

/// A registered resource as reports show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResourceInfo {
    /// Its id (unique per manager).
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its bytes.
    pub size: usize,
    /// Its device.
    pub device: u8,
    /// Where it was registered (`file:line:column`).
    pub site: String,
    /// Higher is kept longer.
    pub priority: i32,
    /// Whether pressure may release it.
    pub droppable: bool,
    /// Whether it has a cleanup callback.
    pub has_cleanup: bool,
}

/// Counters of the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResourceStats {
    /// Resources registered now.
    pub registered: usize,
    /// Their bytes.
    pub bytes: usize,
    /// Bytes of those pressure may release.
    pub droppable_bytes: usize,
    /// Resources released by pressure so far.
    pub released_under_pressure: u64,
    /// Their bytes.
    pub released_under_pressure_bytes: u64,
    /// Resources released so far, for any reason (callback run or unregistered).
    pub released: u64,
}

struct Entry {
    info: ResourceInfo,
    cleanup: Option<CleanupCallback>,
}

/// The registry of one manager.
#[derive(Default)]
pub(crate) struct Registry {
    next: AtomicU64,
    entries: Mutex<BTreeMap<u64, Entry>>,
    stats: Mutex<ResourceStats>,
}

impl Registry {
    /// Registers `r`, made at `site`; announces it.
    pub(crate) fn register(&self, bus: &EventBus, r: Resource, site: &Location<'_>) -> u64 {
        let id = self.next.fetch_add(1, Relaxed) + 1;
        let info = ResourceInfo {
            id,
            name: r.name,
            size: r.size,
            device: r.device.0,
            site: crate::tracking::location_name(site),
            priority: r.priority,
            droppable: r.droppable,
            has_cleanup: r.cleanup.is_some(),
        };
        bus.emit(EventKind::ResourceRegistered, || {
            MemoryEvent::ResourceRegistered {
                id,
                name: info.name.clone(),
                size: info.size,
                site: info.site.clone(),
            }
        });
        self.entries.lock().insert(
            id,
            Entry {
                info,
                cleanup: r.cleanup,
            },
        );
        id
    }

    /// Removes `id`; runs its callback when `run` (outside the lock); announces it.
    /// `false` when it was no longer registered.
    fn release(&self, bus: &EventBus, id: u64, run: bool, reason: &str) -> bool {
        let Some(e) = self.entries.lock().remove(&id) else {
            return false;
        };
        self.stats.lock().released += 1;
        if run {
            if let Some(f) = e.cleanup {
                f();
            }
        }
        bus.emit(EventKind::ResourceReleased, || {
            MemoryEvent::ResourceReleased {
                id,
                name: e.info.name.clone(),
                size: e.info.size,
                reason: reason.to_string(),
            }
        });
        true
    }

    /// Runs the callbacks of every droppable resource, lowest priority first (then
    /// oldest); returns how many and their bytes.
    pub(crate) fn release_droppable(&self, bus: &EventBus) -> (usize, usize) {
        let mut victims: Vec<(i32, u64, usize)> = self
            .entries
            .lock()
            .values()
            .filter(|e| e.info.droppable)
            .map(|e| (e.info.priority, e.info.id, e.info.size))
            .collect();
        victims.sort_unstable();
        let (mut n, mut bytes) = (0, 0);
        for (_, id, size) in victims {
            if self.release(bus, id, true, "released under memory pressure") {
                n += 1;
                bytes += size;
            }
        }
        let mut s = self.stats.lock();
        s.released_under_pressure += n as u64;
        s.released_under_pressure_bytes += bytes as u64;
        (n, bytes)
    }

    /// Every registered resource, by id.
    pub(crate) fn list(&self) -> Vec<ResourceInfo> {
        self.entries
            .lock()
            .values()
            .map(|e| e.info.clone())
            .collect()
    }

    /// The counters, with what is registered now.
    pub(crate) fn stats(&self) -> ResourceStats {
        let mut s = self.stats.lock().clone();
        for e in self.entries.lock().values() {
            s.registered += 1;
            s.bytes += e.info.size;
            if e.info.droppable {
                s.droppable_bytes += e.info.size;
            }
        }
        s
    }
}

/// A registered resource. Dropping it unregisters the resource without running its
/// callback; [`release`](Self::release) runs the callback.
pub struct ResourceHandle<'m> {
    reg: &'m Registry,
    bus: &'m EventBus,
    id: u64,
}

impl std::fmt::Debug for ResourceHandle<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceHandle")
            .field("id", &self.id)
            .finish()
    }
}

impl<'m> ResourceHandle<'m> {
    pub(crate) fn new(reg: &'m Registry, bus: &'m EventBus, id: u64) -> Self {
        Self { reg, bus, id }
    }

    /// Its id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the manager released it (pressure ran its callback).
    pub fn is_released(&self) -> bool {
        !self.reg.entries.lock().contains_key(&self.id)
    }

    /// Runs its callback (unless pressure already did) and unregisters it.
    pub fn release(self) {
        self.reg
            .release(self.bus, self.id, true, "released by its owner");
    }
}

impl Drop for ResourceHandle<'_> {
    fn drop(&mut self) {
        self.reg.release(self.bus, self.id, false, "unregistered");
    }
}
