//! The memory event bus: subscribers get events on bounded queues; an allocating thread
//! never blocks on a slow subscriber (the event is dropped and counted), and no event is
//! built when nobody listens for its kind.

use crate::device::DeviceId;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Kinds of events, as bits for filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum EventKind {
    /// [`MemoryEvent::AllocationCreated`].
    AllocationCreated = 1,
    /// [`MemoryEvent::AllocationDropped`].
    AllocationDropped = 2,
    /// [`MemoryEvent::AllocationFailed`].
    AllocationFailed = 4,
    /// [`MemoryEvent::CleanupTriggered`].
    CleanupTriggered = 8,
    /// [`MemoryEvent::CleanupCompleted`].
    CleanupCompleted = 16,
    /// [`MemoryEvent::SamplingRateChanged`].
    SamplingRateChanged = 32,
    /// [`MemoryEvent::FragmentationDetected`].
    FragmentationDetected = 64,
    /// [`MemoryEvent::MemoryPressureChanged`].
    MemoryPressureChanged = 128,
    /// [`MemoryEvent::MemoryPressureCritical`].
    MemoryPressureCritical = 256,
    /// [`MemoryEvent::PotentialLeakDetected`].
    PotentialLeakDetected = 512,
    /// [`MemoryEvent::LeakConfirmed`].
    LeakConfirmed = 1024,
    /// [`MemoryEvent::StrategyChanged`].
    StrategyChanged = 2048,
    /// [`MemoryEvent::CleanupMismatch`].
    CleanupMismatch = 4096,
    /// [`MemoryEvent::PoolOptimizationCompleted`].
    PoolOptimizationCompleted = 8192,
    /// [`MemoryEvent::ResourceRegistered`].
    ResourceRegistered = 16384,
    /// [`MemoryEvent::ResourceReleased`].
    ResourceReleased = 32768,
}

/// A set of event kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFilter(pub u32);

impl EventFilter {
    /// Every kind.
    pub const ALL: EventFilter = EventFilter(u32::MAX);
    /// No kind.
    pub const NONE: EventFilter = EventFilter(0);
    /// Only `kind`.
    pub fn only(kind: EventKind) -> Self {
        Self(kind as u32)
    }
    /// This set and `kind`.
    pub fn with(self, kind: EventKind) -> Self {
        Self(self.0 | kind as u32)
    }
    /// Every kind but the per-allocation ones (created, dropped): what most monitors want.
    pub fn all_but_allocations() -> Self {
        Self(!(EventKind::AllocationCreated as u32 | EventKind::AllocationDropped as u32))
    }
    /// Whether `kind` is in the set.
    pub fn contains(self, kind: EventKind) -> bool {
        self.0 & kind as u32 != 0
    }
}

/// Why cleanup ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CleanupStrategy {
    /// Someone called `trim`.
    Requested,
    /// A request could not be served; caches were trimmed before retrying.
    TrimAndRetry,
    /// Everything cached released at once (critical pressure).
    Emergency,
    /// The background worker released memory idle past its decay time.
    Decay,
    /// Movable blocks were moved to fill holes and the chunks emptied were released
    /// ([`MemoryManager::compact`](crate::MemoryManager::compact)).
    Compaction,
    /// A large block was freed while its device was under high pressure: an immediate
    /// cleanup of that device.
    Pressure,
}

/// A pool's figures before or after an optimization (a strategy switch or a compaction),
/// each measured, never estimated.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptimizationFigures {
    /// The large-block strategy in use.
    pub strategy: String,
    /// Mean nanoseconds per large-pool operation (allocate or free) measured under that
    /// strategy (0 when nothing was measured yet).
    pub ns_per_op: f64,
    /// Live bytes over mapped bytes, `0..=1`.
    pub utilisation: f64,
    /// External fragmentation of the large pool's free memory, `0..=1`.
    pub fragmentation: f64,
    /// Bytes mapped from the device.
    pub mapped_bytes: usize,
    /// Largest free block of the large pool.
    pub largest_free: usize,
}

/// Something that happened in the manager.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum MemoryEvent {
    /// An allocation was made.
    AllocationCreated {
        /// Tracking id (0 when the allocation is not tracked).
        id: u32,
        /// Address of the block.
        addr: usize,
        /// Requested bytes.
        size: usize,
        /// Device.
        device: DeviceId,
    },
    /// An allocation was freed.
    AllocationDropped {
        /// Tracking id (0 when the allocation was not tracked).
        id: u32,
        /// Address of the block.
        addr: usize,
        /// Requested bytes.
        size: usize,
        /// Device.
        device: DeviceId,
    },
    /// A request failed (the error's text).
    AllocationFailed {
        /// Requested bytes.
        size: usize,
        /// Device.
        device: DeviceId,
        /// The error.
        error: String,
    },
    /// Cleanup started.
    CleanupTriggered {
        /// Why.
        strategy: CleanupStrategy,
    },
    /// Cleanup finished.
    CleanupCompleted {
        /// Why it ran.
        strategy: CleanupStrategy,
        /// Slabs and chunks released.
        resources_cleaned: usize,
        /// Bytes given back to devices.
        memory_reclaimed: usize,
        /// How long it took, in nanoseconds.
        duration_ns: u64,
    },
    /// The tracking layer changed its sampling rate.
    SamplingRateChanged {
        /// Before.
        old: f64,
        /// After.
        new: f64,
        /// Why (measured overhead, or a setting).
        reason: String,
    },
    /// A device's free memory is fragmented past the threshold.
    FragmentationDetected {
        /// Device.
        device: DeviceId,
        /// External fragmentation, `0..=1`.
        fragmentation_level: f64,
    },
    /// The pressure level changed.
    MemoryPressureChanged {
        /// Device.
        device: DeviceId,
        /// New level.
        level: String,
        /// Bytes still available (budget or system), if known.
        available_memory: Option<usize>,
    },
    /// Pressure is critical; emergency cleanup follows.
    MemoryPressureCritical {
        /// Device.
        device: DeviceId,
        /// What the manager does about it.
        action_required: String,
    },
    /// A leak detector suspects an allocation.
    PotentialLeakDetected {
        /// Tracking id.
        id: u32,
        /// Which detector.
        detection_method: String,
    },
    /// A leak detector is sure.
    LeakConfirmed {
        /// Tracking id.
        id: u32,
        /// What it found.
        leak_info: String,
    },
    /// Dynamic strategy selection moved the threshold between size classes and best fit
    /// (`Strategy::Hybrid` only; see `pool::adaptive`).
    StrategyChanged {
        /// Device.
        device: DeviceId,
        /// Largest request served by size classes before.
        old_threshold: usize,
        /// And from now on.
        new_threshold: usize,
        /// Why, with the figures that decided it.
        reason: String,
    },
    /// What a cleanup claimed it gave back does not match what the pools' ledgers moved
    /// (see `cleanup::validate`).
    CleanupMismatch {
        /// Why the cleanup ran.
        strategy: CleanupStrategy,
        /// Which executor ran it (`immediate`, `batched`, `emergency`).
        executor: String,
        /// Bytes it claimed (chunks released plus pages handed back).
        claimed: usize,
        /// Bytes the ledgers show given back meanwhile.
        observed: usize,
        /// What failed.
        detail: String,
    },
    /// The pool optimizer switched a pool's large-block strategy or compacted it.
    PoolOptimizationCompleted {
        /// Device.
        device: DeviceId,
        /// `"strategy switch"` or `"compaction"`.
        action: String,
        /// The figures before.
        before: OptimizationFigures,
        /// The figures after.
        after: OptimizationFigures,
        /// Why, with the figures that decided it.
        reason: String,
    },
    /// A resource the manager does not allocate was registered for accounting and
    /// cleanup (`MemoryManager::register_resource`).
    ResourceRegistered {
        /// Its id.
        id: u64,
        /// Its name.
        name: String,
        /// Its bytes.
        size: usize,
        /// Where it was registered (`file:line:column`).
        site: String,
    },
    /// A registered resource was released: its cleanup callback ran (under pressure or
    /// at its owner's request) or it was unregistered.
    ResourceReleased {
        /// Its id.
        id: u64,
        /// Its name.
        name: String,
        /// Its bytes.
        size: usize,
        /// Why.
        reason: String,
    },
}

impl MemoryEvent {
    /// The kind of this event.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::AllocationCreated { .. } => EventKind::AllocationCreated,
            Self::AllocationDropped { .. } => EventKind::AllocationDropped,
            Self::AllocationFailed { .. } => EventKind::AllocationFailed,
            Self::CleanupTriggered { .. } => EventKind::CleanupTriggered,
            Self::CleanupCompleted { .. } => EventKind::CleanupCompleted,
            Self::SamplingRateChanged { .. } => EventKind::SamplingRateChanged,
            Self::FragmentationDetected { .. } => EventKind::FragmentationDetected,
            Self::MemoryPressureChanged { .. } => EventKind::MemoryPressureChanged,
            Self::MemoryPressureCritical { .. } => EventKind::MemoryPressureCritical,
            Self::PotentialLeakDetected { .. } => EventKind::PotentialLeakDetected,
            Self::LeakConfirmed { .. } => EventKind::LeakConfirmed,
            Self::StrategyChanged { .. } => EventKind::StrategyChanged,
            Self::CleanupMismatch { .. } => EventKind::CleanupMismatch,
            Self::PoolOptimizationCompleted { .. } => EventKind::PoolOptimizationCompleted,
            Self::ResourceRegistered { .. } => EventKind::ResourceRegistered,
            Self::ResourceReleased { .. } => EventKind::ResourceReleased,
        }
    }
}

struct Subscriber {
    filter: EventFilter,
    tx: Sender<MemoryEvent>,
    dropped: Arc<AtomicU64>,
    gone: AtomicBool,
}

/// The bus of one manager.
#[derive(Default)]
pub struct EventBus {
    interest: AtomicU32,
    /// Kinds wanted by the manager itself (the history), whatever the subscribers.
    pinned: AtomicU32,
    subscribers: RwLock<Vec<Subscriber>>,
    dropped: AtomicU64,
}

/// The receiving end of a subscription; dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    rx: Receiver<MemoryEvent>,
    dropped: Arc<AtomicU64>,
}

impl Subscription {
    /// The channel of events.
    pub fn receiver(&self) -> &Receiver<MemoryEvent> {
        &self.rx
    }
    /// Events that were dropped because this subscriber's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
    /// Every event queued now.
    pub fn drain(&self) -> Vec<MemoryEvent> {
        self.rx.try_iter().collect()
    }
}

impl EventBus {
    /// Whether anyone listens for `kind`: one relaxed load, for hot paths.
    #[inline]
    pub fn wants(&self, kind: EventKind) -> bool {
        self.interest.load(Relaxed) & kind as u32 != 0
    }

    /// Subscribes to the kinds in `filter`, with a queue of `capacity` events.
    pub fn subscribe(&self, filter: EventFilter, capacity: usize) -> Subscription {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let mut subs = self.subscribers.write();
        subs.push(Subscriber {
            filter,
            tx,
            dropped: dropped.clone(),
            gone: AtomicBool::new(false),
        });
        self.interest.fetch_or(filter.0, Relaxed);
        Subscription { rx, dropped }
    }

    /// Sends the event built by `make` to every subscriber of `kind`; builds nothing when
    /// nobody listens. Never blocks.
    #[inline]
    pub fn emit(&self, kind: EventKind, make: impl FnOnce() -> MemoryEvent) {
        if self.wants(kind) {
            self.emit_slow(kind, make());
        }
    }

    #[cold]
    fn emit_slow(&self, kind: EventKind, event: MemoryEvent) {
        let mut gone = false;
        {
            let subs = self.subscribers.read();
            for s in subs.iter().filter(|s| s.filter.contains(kind)) {
                match s.tx.try_send(event.clone()) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        s.dropped.fetch_add(1, Relaxed);
                        self.dropped.fetch_add(1, Relaxed);
                    }
                    Err(TrySendError::Disconnected(_)) => {
                        s.gone.store(true, Relaxed);
                        gone = true;
                    }
                }
            }
        }
        if gone {
            let mut subs = self.subscribers.write();
            subs.retain(|s| !s.gone.load(Relaxed));
            self.recompute_interest(&subs);
        }
    }

    /// Makes [`wants`](Self::wants) say yes for `kinds` without a subscriber (`on`), or
    /// only when a subscriber wants them (`!on`): the manager's history takes the
    /// reporting paths this way.
    pub(crate) fn pin_interest(&self, kinds: EventFilter, on: bool) {
        let subs = self.subscribers.write();
        if on {
            self.pinned.fetch_or(kinds.0, Relaxed);
        } else {
            self.pinned.fetch_and(!kinds.0, Relaxed);
        }
        self.recompute_interest(&subs);
    }

    /// Interest is what the subscribers want plus what is pinned. Called with the
    /// subscriber list locked for writing, so no subscribe races with it.
    fn recompute_interest(&self, subs: &[Subscriber]) {
        let interest = subs
            .iter()
            .fold(self.pinned.load(Relaxed), |a, s| a | s.filter.0);
        self.interest.store(interest, Relaxed);
    }

    /// Events dropped over all subscribers.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Number of subscribers.
    pub fn subscribers(&self) -> usize {
        self.subscribers.read().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_event_is_built_without_a_subscriber() {
        let bus = EventBus::default();
        bus.emit(EventKind::AllocationCreated, || {
            panic!("built an event nobody listens to")
        });
        let sub = bus.subscribe(EventFilter::only(EventKind::CleanupTriggered), 4);
        bus.emit(EventKind::AllocationCreated, || panic!("wrong kind built"));
        bus.emit(EventKind::CleanupTriggered, || {
            MemoryEvent::CleanupTriggered {
                strategy: CleanupStrategy::Requested,
            }
        });
        assert_eq!(sub.drain().len(), 1);
        drop(sub);
        bus.emit(EventKind::CleanupTriggered, || {
            MemoryEvent::CleanupTriggered {
                strategy: CleanupStrategy::Requested,
            }
        });
        assert_eq!(bus.subscribers(), 0);
        assert!(!bus.wants(EventKind::CleanupTriggered));
    }
}
