//! `bitnet-mem report INPUT -o report.html`: one self-contained HTML page (or Perfetto
//! trace-event JSON) from a snapshot JSON or an allocation trace.

use super::CmdResult;
use bitnet_memory::MemoryConfig;
use bitnet_report::{
    render_html, render_perfetto, ReplayOptions, ReportData, ReportOptions, SourceKind,
};
use std::path::PathBuf;

/// Output formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One self-contained HTML file.
    Html,
    /// Chrome trace-event JSON for Perfetto and chrome://tracing.
    Perfetto,
}

/// Options of `bitnet-mem report`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A snapshot JSON (starts with `{`) or a trace file (`op,id,size,align,thread,t_ns`).
    pub input: PathBuf,
    /// Where to write the report.
    #[arg(short, long, default_value = "report.html")]
    pub output: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Html)]
    pub format: Format,
    /// For traces: do not replay through the pool (no reserved/fragmentation series).
    #[arg(long)]
    pub no_replay: bool,
}

/// Writes the report.
pub fn run(a: Args) -> CmdResult {
    let mut opts = ReportOptions::default();
    if !a.no_replay {
        opts = opts.replay(ReplayOptions {
            config: MemoryConfig::default(),
            metrics_every: 0,
        });
    }
    let data = ReportData::load(&a.input, &opts)?;
    // The library draws an empty trace as an empty page; asked for by name, it is a
    // mistake (a wrong file, a recording that never started), so say so.
    if matches!(data.source, SourceKind::Trace | SourceKind::TraceReplay)
        && data.timeline.events == 0
    {
        return Err(format!(
            "{}: the trace has no events (an empty file, or only a header, blank lines or comments): nothing to report",
            a.input.display()
        )
        .into());
    }
    let text = match a.format {
        Format::Html => render_html(&data),
        Format::Perfetto => render_perfetto(&data),
    };
    std::fs::write(&a.output, text)
        .map_err(|e| format!("cannot write {}: {e}", a.output.display()))?;
    eprintln!("wrote {}", a.output.display());
    Ok(())
}
