//! Errors of report building: each says where the input went wrong.

/// Why a report could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The input could not be read.
    #[error("cannot read {what}: {source}")]
    Io {
        /// What was being read (a path, or "input").
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line of a trace is malformed or inconsistent (e.g. frees an unknown id).
    #[error("trace line {line}: {message}")]
    Trace {
        /// 1-based line number in the trace file.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A snapshot JSON does not match the schema (see `docs/report.md`).
    #[error("snapshot field `{path}`: {message}")]
    Snapshot {
        /// Path of the offending field, e.g. `devices[0].pools[1].chunks[2].size`
        /// (`.` for the document itself).
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The memory manager for a replay could not be created (a bad `MemoryConfig`).
    #[error("cannot create the memory manager for the replay: {0}")]
    Manager(String),
    /// Replaying a trace through a memory manager failed.
    #[error("replay of trace line {line}: {message}")]
    Replay {
        /// 1-based line number of the event that failed.
        line: usize,
        /// The manager's error.
        message: String,
    },
}

/// Result of report building.
pub type Result<T, E = ReportError> = std::result::Result<T, E>;

impl ReportError {
    /// A trace the reader refused: a read failure of `what`, or a bad line (its number and
    /// the reader's reason).
    pub(crate) fn from_trace(e: bitnet_memory::trace::TraceError, what: &str) -> Self {
        match e.kind {
            bitnet_memory::trace::TraceErrorKind::Io(message) => ReportError::Io {
                what: what.to_string(),
                source: std::io::Error::other(message),
            },
            kind => ReportError::Trace {
                line: e.line,
                message: kind.to_string(),
            },
        }
    }
}
