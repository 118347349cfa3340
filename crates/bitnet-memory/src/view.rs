//! The narrow interface between the manager and its services.
//!
//! Tracking, the cleanup engine and leak detection never see [`MemoryManager`]'s
//! internals (`manager::Inner`): the manager hands them a [`ManagerView`], a few shared
//! references to the parts they read and call (the device pools, the tracker, the event
//! bus, the history), and they keep their own state themselves. Everything here sits
//! below the manager: this module names only the pool, tracking, events and history.
//!
//! [`MemoryManager`]: crate::MemoryManager
#![deny(unsafe_code)]

use crate::device::DeviceId;
use crate::events::EventBus;
use crate::history::History;
use crate::pool::hybrid::DevicePool;
use crate::snapshot::HistoryKind;
use crate::tracking::Tracker;
use std::time::Instant;

/// What a service may read and call of one manager. Cheap to make (five words) and
/// `Copy`; made anew for each call from the manager's fields.
#[derive(Clone, Copy)]
pub(crate) struct ManagerView<'a> {
    /// The device pools, indexed by `DeviceId`.
    pub(crate) devices: &'a [DevicePool],
    /// The tracking layer: live records, sites.
    pub(crate) tracker: &'a Tracker,
    /// The event bus.
    pub(crate) bus: &'a EventBus,
    /// The allocation history (`record_history`).
    pub(crate) history: &'a History,
    /// When the manager was made: the clock of snapshots and the history.
    pub(crate) started: Instant,
}

impl ManagerView<'_> {
    /// Nanoseconds since the manager was made.
    pub(crate) fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    /// Live and committed bytes over every device, now.
    pub(crate) fn live_and_reserved(&self) -> (usize, usize) {
        self.devices.iter().fold((0, 0), |(l, r), d| {
            (l + d.live_now(), r + d.committed_now())
        })
    }

    /// Exact live (requested) bytes over every device.
    pub(crate) fn live_bytes(&self) -> usize {
        self.devices.iter().map(|d| d.metrics().live_bytes).sum()
    }

    /// Adds a trim or pressure entry to the history, if it is on.
    pub(crate) fn history_mark(
        &self,
        kind: HistoryKind,
        device: DeviceId,
        size: usize,
        detail: impl FnOnce() -> String,
    ) {
        if self.history.is_on() {
            let (live, reserved) = self.live_and_reserved();
            self.history
                .mark(self.now_ns(), kind, device, size, live, reserved, detail());
        }
    }
}
