//! One module per subcommand of `bitnet-mem`.

pub mod bench;
#[cfg(feature = "wgpu")]
pub mod bench_gpu;
pub mod demo;
pub mod device;
pub mod leakcheck;
pub mod replay;
pub mod report;
pub mod resident;

/// What a subcommand returns.
pub type CmdResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
