//! # bitnet-report
//!
//! See where memory goes: one self-contained HTML page (no network, inline script and
//! style) and a Perfetto / `chrome://tracing` JSON, from either an allocation trace
//! (`op,id,size,align,thread,t_ns`) or a snapshot JSON of a `bitnet_memory::MemoryManager`.
//!
//! Both inputs map into one [`ReportData`]; the renderers read only that.
//!
//! ```
//! use bitnet_report::{render_html, render_perfetto, ReportData, ReportOptions};
//!
//! let trace = "op,id,size,align,thread,t_ns\n\
//!              a,1,1000,16,0,0\n\
//!              a,2,5000000,64,0,10\n\
//!              f,1,0,0,0,20\n";
//! let data = ReportData::from_trace(trace, &ReportOptions::default())?;
//! assert_eq!(data.peak.map(|p| p.bytes), Some(5_001_000));
//! assert_eq!(data.live_at_peak[0].id, 2);               // largest first
//! let html = render_html(&data);                        // one file, opens offline
//! assert!(html.contains("id=\"timeline\"") && !html.contains("<link"));
//! let json = render_perfetto(&data);                    // for ui.perfetto.dev
//! assert!(json.starts_with('{'));
//! # Ok::<(), bitnet_report::ReportError>(())
//! ```
//!
//! `docs/report.md` describes the page, the Perfetto output and the snapshot schema
//! ([`snapshot`]).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod bands;
mod blocks;
mod error;
mod from_snapshot;
mod from_trace;
mod html;
pub mod model;
mod options;
mod perfetto;
mod replay;
pub mod snapshot;
mod timeline;

pub use bands::SizeBand;
pub use blocks::MAX_BLOCKS;
pub use error::{ReportError, Result};
pub use from_snapshot::BEFORE_HISTORY;
pub use html::render_html;
pub use model::{
    BlockSpan, ChunkBlock, ChunkMap, LeakGroup, LiveBlock, Marker, MarkerKind, Peak, ReportData,
    Sample, SeriesKind, SourceKind, SummaryItem, Timeline,
};
pub use options::{ReplayOptions, ReportOptions};
pub use perfetto::render_perfetto;
pub use snapshot::{Snapshot, SNAPSHOT_VERSION};

use bitnet_memory::trace;
use std::io::BufRead;
use std::path::Path;

const DEFAULT_TITLE: &str = "memory report";

impl ReportData {
    /// The report of an allocation trace given as text.
    pub fn from_trace(text: &str, opts: &ReportOptions) -> Result<Self> {
        Self::from_trace_reader(text.as_bytes(), opts)
    }

    /// The report of an allocation trace read line by line, by `bitnet_memory::trace`'s
    /// reader: the header is optional, blank lines and `#` comments are skipped, each line
    /// is checked on its own; a bad one is a [`ReportError::Trace`] naming it.
    pub fn from_trace_reader(input: impl BufRead, opts: &ReportOptions) -> Result<Self> {
        let title = opts.title.clone().unwrap_or_else(|| DEFAULT_TITLE.into());
        let events = trace::Reader::new(input)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| ReportError::from_trace(e, &title))?;
        from_trace::build(&events, opts, title)
    }

    /// The report of a snapshot JSON given as text (see [`Snapshot::from_json`]).
    pub fn from_snapshot_json(text: &str, opts: &ReportOptions) -> Result<Self> {
        Self::from_snapshot(&Snapshot::from_json(text)?, opts)
    }

    /// The report of a snapshot.
    pub fn from_snapshot(snap: &Snapshot, opts: &ReportOptions) -> Result<Self> {
        snap.check()?;
        let title = opts.title.clone().unwrap_or_else(|| DEFAULT_TITLE.into());
        from_snapshot::build(snap, opts, title)
    }

    /// The report of a file: a snapshot JSON if its first non-blank character is `{`,
    /// else an allocation trace. The title defaults to the file name.
    pub fn load(path: impl AsRef<Path>, opts: &ReportOptions) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
            what: path.display().to_string(),
            source,
        })?;
        let mut opts = opts.clone();
        if opts.title.is_none() {
            let name = path.file_name().unwrap_or(path.as_os_str());
            opts.title = Some(name.to_string_lossy().into_owned());
        }
        if text.trim_start().starts_with('{') {
            Self::from_snapshot_json(&text, &opts)
        } else {
            Self::from_trace(&text, &opts)
        }
    }
}
