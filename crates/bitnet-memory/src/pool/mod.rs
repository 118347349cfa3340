//! The memory pool optimizer: size classes, thread caches, and the large-block strategies
//! behind one trait. Everything here works on addresses and offsets and is safe code; only
//! [`crate::device`] and [`crate::allocation`] touch memory.
#![deny(unsafe_code)]

pub mod adaptive;
pub(crate) mod buddy;
pub(crate) mod central;
pub mod config;
pub mod fragmentation;
pub(crate) mod hybrid;
pub(crate) mod large;
pub(crate) mod resident;
pub mod size_class;
pub(crate) mod snapshot;
pub mod stats;
pub(crate) mod strategy;
pub(crate) mod thread_cache;
pub(crate) mod tlsf;

pub use config::{PoolConfig, Strategy};
pub use fragmentation::FragmentationReport;
pub use hybrid::TrimReport;
pub use stats::{
    ClassStats, LargePoolStats, PoolLedger, PoolStats, SmallPoolStats, StrategyTiming,
};
