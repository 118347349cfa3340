//! One module per subcommand of `bitnet-mem`.

pub mod bench;
pub mod demo;
pub mod leakcheck;
pub mod replay;
pub mod report;
pub mod resident;

/// What a subcommand returns.
pub type CmdResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
