//! `bitnet-mem demo`: a BitNet b1.58 decoder generating tokens on the memory manager, then
//! the same run on plain `Vec` buffers, and the memory report.

use super::device::Device;
use super::{at_least_one, thread_count, CmdResult};
use bitnet_report::{render_html, ReportData, ReportOptions};
use bitnet_tensor::demo::{run_demo, DemoOptions, ModelSize};
use std::path::{Path, PathBuf};

/// Options of `bitnet-mem demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model: `small` (runs in seconds), `2b4t` (the BitNet b1.58 2B4T shapes, about
    /// 1.8 GiB), or a scale of 2B4T such as `0.25`.
    #[arg(long, default_value = "small")]
    pub model: String,
    /// The device the decoder runs on: `cpu` (the manager's run against plain `Vec`s) or
    /// `wgpu` (weights, KV cache and activations in pooled GPU buffers, WGSL kernels;
    /// needs the `wgpu` feature and a Vulkan, Metal or DX12 driver).
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// Tokens to generate; 1 or more.
    #[arg(long, default_value_t = 64, value_parser = at_least_one)]
    pub tokens: usize,
    /// Threads the ops run on, 1 to 1024 (default: all cores).
    #[arg(long, value_parser = thread_count)]
    pub threads: Option<usize>,
    /// Memory budget of the manager, e.g. `512M`, `2G` or bytes.
    #[arg(long, value_parser = parse_bytes)]
    pub budget: Option<usize>,
    /// Seed of the weights and the prompt.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Also write the memory report of the manager run: one self-contained HTML page
    /// (timeline, what was live at the peak, fragmentation, chunk map, leaks, summary).
    /// Records the allocation history, which slows the manager run down.
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Also write the manager's snapshot JSON (taken after decoding, model loaded, with
    /// the recorded history); `bitnet-mem report` draws it.
    #[arg(long, value_name = "PATH")]
    pub snapshot: Option<PathBuf>,
    /// Entries of history kept for `--html` / `--snapshot` (the newest; older ones are
    /// counted as dropped).
    #[arg(long, default_value_t = 500_000, value_name = "N", value_parser = at_least_one)]
    pub history: usize,
}

/// Parses `123`, `64K`, `512M`, `2G` (binary units) into bytes.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = s[i..].to_ascii_uppercase();
            let mul = match unit.trim_end_matches("IB").trim_end_matches('B') {
                "" => 1usize,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                _ => return Err(format!("unknown unit in {s:?} (use K, M, G or T)")),
            };
            (&s[..i], mul)
        }
        None => (s, 1),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a size: {s:?}"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("size must be positive: {s:?}"));
    }
    Ok((v * mul as f64) as usize)
}

/// Runs the demo and prints its report.
pub fn run(a: Args) -> CmdResult {
    let model: ModelSize = a.model.parse()?;
    let mut opts = DemoOptions {
        model,
        tokens: a.tokens,
        budget: a.budget,
        seed: a.seed,
        progress: crate::bench::progress::bar_enabled(a.quiet, false),
        ..DemoOptions::default()
    };
    if let Some(t) = a.threads {
        opts.threads = t;
    }
    if a.device == Device::Wgpu {
        if a.html.is_some() || a.snapshot.is_some() {
            return Err("--html and --snapshot are for the CPU demo (the GPU demo prints its pool's figures)".into());
        }
        #[cfg(feature = "wgpu")]
        {
            let report = bitnet_tensor::gpu::run_gpu_demo(&opts)?;
            println!("{report}");
            if !report.leak_free() {
                return Err("the GPU decode left blocks live that it should have freed".into());
            }
            return Ok(());
        }
        #[cfg(not(feature = "wgpu"))]
        return Err(super::device::no_wgpu_feature());
    }
    let wants_snapshot = a.html.is_some() || a.snapshot.is_some();
    if wants_snapshot {
        // Fail before the run, not after it, when an output cannot be written.
        for path in a.html.iter().chain(&a.snapshot) {
            check_writable(path)?;
        }
        opts.history = Some(a.history);
    }
    let report = run_demo(&opts)?;
    println!("{report}");
    if let Some(m) = &report.manager {
        // The seed's metric table, measured on the manager run (model still loaded).
        println!(
            "the seed's metrics, manager run after decoding:\n{}",
            m.metrics.seed
        );
    }
    let snap = report.manager.as_ref().and_then(|m| m.snapshot.as_deref());
    if let (true, Some(snap)) = (wants_snapshot, snap) {
        if let Some(path) = &a.snapshot {
            let json = serde_json::to_string(snap)?;
            write(path, &json)?;
        }
        if let Some(path) = &a.html {
            let opts = ReportOptions {
                title: Some(format!("bitnet-mem demo ({} tokens)", a.tokens)),
                ..ReportOptions::default()
            };
            let data = ReportData::from_snapshot(snap, &opts)?;
            write(path, &render_html(&data))?;
        }
        if snap.history_dropped > 0 {
            eprintln!(
                "note: {} older history entries did not fit in --history {}",
                snap.history_dropped, a.history
            );
        }
    }
    Ok(())
}

/// Whether `path` names a file that can be created: its folder exists and is not the path
/// itself.
fn check_writable(path: &Path) -> CmdResult {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!(
            "cannot write {}: no folder {}",
            path.display(),
            dir.display()
        )
        .into());
    }
    if path.is_dir() {
        return Err(format!("cannot write {}: it is a folder", path.display()).into());
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> CmdResult {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn outputs_that_cannot_be_written_are_refused_before_the_run() {
        use super::check_writable;
        use std::path::Path;
        assert!(check_writable(Path::new("report.html")).is_ok());
        let dir = std::env::temp_dir();
        assert!(check_writable(&dir.join("r.html")).is_ok());
        let e = check_writable(&dir.join("no-such-folder-8c1f/r.html")).unwrap_err();
        assert!(e.to_string().contains("no folder"), "{e}");
        let e = check_writable(&dir).unwrap_err();
        assert!(e.to_string().contains("is a folder"), "{e}");
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_bytes("123"), Ok(123));
        assert_eq!(parse_bytes("64K"), Ok(64 << 10));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("1.5G"), Ok(3 << 29));
        assert!(parse_bytes("12X").is_err());
        assert!(parse_bytes("-3M").is_err());
        assert!(parse_bytes("M").is_err());
    }
}
