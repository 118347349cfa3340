//! Adapters that let code written against Rust's allocator interfaces run on the pool, and
//! a recorder of any Rust program's allocations.
//!
//! - `impl allocator_api2::alloc::Allocator for &MemoryManager`: collections of
//!   `allocator_api2` (`Vec<T, &MemoryManager>`, hashbrown maps) on a manager you hold.
//! - [`PoolAlloc`]: a [`GlobalAlloc`](std::alloc::GlobalAlloc) backed by a lazily built manager, usable as
//!   `#[global_allocator]`.
//! - [`StatsAlloc`]: wraps any [`GlobalAlloc`](std::alloc::GlobalAlloc) and counts
//!   blocks and bytes exactly (total, live, peak, [`StatsAlloc::reset_peak`]) for heap
//!   assertions in tests, in the manner of dhat-rs.
//! - [`RecordingAlloc`]: wraps any [`GlobalAlloc`](std::alloc::GlobalAlloc) and writes a trace in the format of
//!   [`crate::trace`] (`docs/trace-format.md`) that `bitnet-mem replay` replays.
//!
//! ```
//! use allocator_api2::vec::Vec;
//! use bitnet_memory::{MemoryConfig, MemoryManager};
//!
//! let mm = MemoryManager::new(MemoryConfig::default())?;
//! let mut v: Vec<u32, &MemoryManager> = Vec::new_in(&mm);
//! v.extend(0..1000);
//! assert_eq!(mm.metrics().live_bytes(), v.capacity() * 4);
//! # Ok::<(), bitnet_memory::MemoryError>(())
//! ```
//!
//! One file per adapter: `allocator_api.rs`, `global_alloc.rs`, `recording.rs`;
//! `pool_access.rs` holds the few pool calls the first two share. The module is also
//! reachable as `bitnet_memory::global`, its old name.

mod allocator_api;
mod deferred;
// Its constructor is `const`; loom's atomics are not: a loom build checks the list alone.
#[cfg(not(loom))]
mod global_alloc;
mod guard;
mod heap_stats;
mod pool_access;
mod recording;

#[cfg(not(loom))]
pub use global_alloc::PoolAlloc;
pub use heap_stats::{HeapDelta, HeapStats, StatsAlloc};
pub use recording::{RecordSummary, RecordingAlloc};
