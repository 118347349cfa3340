//! One module per subcommand of `bitnet-mem`.

pub mod bench;
pub mod replay;
pub mod resident;

/// What a subcommand returns.
pub type CmdResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
