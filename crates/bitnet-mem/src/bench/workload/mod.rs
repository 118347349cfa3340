//! Workloads as seeded, deterministic operation streams.
//!
//! A [`Stream`] is a list of allocate / free operations on numbered slots, made before a run
//! so that every allocator gets exactly the same requests and the run itself only reads the
//! list. Every allocated block is touched one byte per 4 KiB page (by the runner).
//!
//! One file per kind of workload, their items re-exported here: `stream.rs` the
//! operations and how a workload builds them, `mix.rs` the log-uniform size mixes
//! (small-mix, tensor-mix, large, cross-thread), `bitnet.rs` a BitNet decode loop,
//! `churn.rs` growing and shrinking tensor sets, `trace.rs` a trace file replayed.

mod bitnet;
mod churn;
mod mix;
mod stream;
mod trace;

pub use bitnet::{bitnet_inference, inference_model};
pub use churn::{churn, CHURN_MAX, CHURN_MIN};
pub use mix::{cross_sizes, log_uniform, window};
pub use stream::{Op, Stream, StreamBuilder};
pub use trace::{from_trace, load_trace};

use serde::{Deserialize, Serialize};

/// Named workloads.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadName {
    /// 64 B..64 KiB, log-uniform, 64 live, oldest freed first.
    SmallMix,
    /// 256 B..64 MiB, log-uniform, 16 live.
    TensorMix,
    /// 1..64 MiB, log-uniform, 8 live.
    Large,
    /// One thread allocates (64 B..64 KiB), another frees.
    CrossThread,
    /// The allocations of a BitNet b1.58 2B4T decode loop, scaled by `--scale`.
    BitnetInference,
    /// Sets of tensors reallocated at growing, then shrinking sizes (64 KiB..64 MiB), with
    /// long-lived tensors interleaved: the pattern behind caching allocators' fragmentation.
    Churn,
    /// A trace file (`--trace`).
    Replay,
}

impl WorkloadName {
    /// Every workload, in table order.
    pub const ALL: [WorkloadName; 7] = [
        WorkloadName::SmallMix,
        WorkloadName::TensorMix,
        WorkloadName::Large,
        WorkloadName::CrossThread,
        WorkloadName::BitnetInference,
        WorkloadName::Churn,
        WorkloadName::Replay,
    ];

    /// Name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::SmallMix => "small-mix",
            Self::TensorMix => "tensor-mix",
            Self::Large => "large",
            Self::CrossThread => "cross-thread",
            Self::BitnetInference => "bitnet-inference",
            Self::Churn => "churn",
            Self::Replay => "replay",
        }
    }
}

#[cfg(test)]
mod tests;
