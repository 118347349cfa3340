//! The snapshot schema this crate reads: what `mm.snapshot()` serializes to JSON. The
//! contract lives in the library ([`bitnet_memory::snapshot`]); `docs/report.md`
//! describes it for people.

pub use bitnet_memory::snapshot::{
    BlockSnapshot, ChunkSnapshot, DeviceSnapshot, HistoryEntry, HistoryKind, MetricsSummary,
    PoolSnapshot, Snapshot, SnapshotError, SNAPSHOT_VERSION,
};

impl From<SnapshotError> for crate::ReportError {
    fn from(e: SnapshotError) -> Self {
        crate::ReportError::Snapshot {
            path: e.path,
            message: e.message,
        }
    }
}
