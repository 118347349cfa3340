//! # bitnet-memory
//!
//! The memory layer of a BitNet (1.58-bit) tensor runtime: a pool that hands out tensor
//! buffers faster than `malloc`, keeps reserved memory close to what is live, and tells you
//! what it holds.
//!
//! ```
//! use bitnet_memory::{MemoryConfig, MemoryManager};
//! use std::alloc::Layout;
//!
//! let mm = MemoryManager::new(MemoryConfig::default())?;
//! let mut weights = mm.try_allocate(Layout::from_size_align(1 << 20, 64)?)?;
//! weights.as_mut_slice()[0] = 1;                    // bounds-checked views
//! let m = mm.metrics();
//! assert_eq!(m.live_bytes(), 1 << 20);
//! drop(weights);                                     // O(1), back to the pool
//! let released = mm.trim();                          // hand cached memory back
//! assert!(released.bytes_released > 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Layers, top to bottom: [`MemoryManager`] (the handle), the pool ([`pool`]: size
//! classes with thread caches, TLSF best fit, buddy), the device layer ([`device`]).
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod adapters;
pub mod allocation;
pub mod cleanup;
pub mod config;
pub mod device;
pub mod error;
pub mod events;
/// The allocator adapters under their first name: everything in [`adapters`].
pub mod global {
    pub use crate::adapters::*;
}
mod history;
pub mod leak;
pub mod lifecycle;
mod manager;
pub mod metrics;
pub mod movable;
pub mod planner;
pub mod pool;
pub mod procfs;
pub mod security;
pub mod seed_metrics;
pub mod shared;
pub mod snapshot;
pub mod stats;
pub mod telemetry;
pub mod trace;
pub mod tracking;
mod units;
mod view;

pub use allocation::Allocation;
pub use cleanup::{CleanupConfig, CleanupReport, OomInfo, PressureLevel};
pub use config::{MemoryConfig, Strategy, TrackingConfig};
pub use device::{CpuBackend, DeviceBackend, DeviceId, FailingBackend};
pub use error::{MemoryError, Result};
pub use events::{EventFilter, EventKind, MemoryEvent, Subscription};
pub use leak::{
    LeakConfig, LeakDetector, LeakFinding, LeakReport, LeakScope, ShutdownMode, StrictScope,
};
pub use manager::{LeakCheck, ManagerBuilder, MemoryManager, RawBlock, MAX_HISTORY};
pub use metrics::{DeviceMetrics, MetricsSnapshot};
pub use movable::{CompactionReport, MovableAllocation, Pinned, PinnedMut};
pub use pool::{FragmentationReport, TrimReport};
pub use shared::{OwnsAllocation, Shared, WeakShared};
pub use snapshot::Snapshot;

/// The crate README's examples run as doctests (the file is inside the crate, so the
/// packaged crate builds them too).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
