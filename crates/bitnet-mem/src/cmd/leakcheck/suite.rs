//! `bitnet-mem leakcheck`: a seeded suite that injects leaks of each kind into a
//! model-like workload and measures, per detector and tracking mode, how many were found
//! and how many clean runs raised a false alarm.
//!
//! The workload: persistent weights, a persistent KV cache that grows for a few steps and
//! then stays flat, and steps (each in a leak scope) of temporaries with log-uniform sizes
//! (64 B .. 2 MiB) and linked views that die with their step. Injected leaks, one per run:
//!
//! | detector       | injected leak                                                  |
//! |----------------|----------------------------------------------------------------|
//! | `accounting`   | forgotten handle (`mem::forget`) between steps; [`LeakCheck`]  |
//! | `scope`        | a buffer allocated in a step and kept past it                  |
//! | `growth`       | a cache that gains an entry every step from some step on       |
//! | `relationship` | two blocks linked to each other, then forgotten                |
//! | `site`         | the leak of `scope`, from one site, found as one finding there |
//!
//! Each leak is one small block, ten small blocks from one site, or one large (2 MiB)
//! block, chosen by the seed; "eligible" counts the large or repeated ones (the target
//! under default sampling). Growth leaks repeat every step, so all are eligible.

use bitnet_memory::{
    LeakCheck, LeakConfig, LeakFinding, MemoryConfig, MemoryManager, ShutdownMode, TrackingConfig,
};
use std::alloc::Layout;
use std::fmt;
use std::path::PathBuf;

/// Options of the suite.
#[derive(Debug, Clone)]
pub struct LeakcheckArgs {
    /// Seeds per leak kind and per tracking mode (each also gives one clean run).
    pub seeds: u64,
    /// First seed.
    pub first_seed: u64,
    /// Steps per run.
    pub steps: usize,
    /// Where to write the JSON result, if anywhere.
    pub json: Option<PathBuf>,
}

impl Default for LeakcheckArgs {
    fn default() -> Self {
        Self {
            seeds: 30,
            first_seed: 1,
            steps: 48,
            json: None,
        }
    }
}

/// One detector in one tracking mode.
#[derive(Debug, Clone, PartialEq)]
pub struct LeakcheckRow {
    /// Detector name.
    pub detector: &'static str,
    /// `"default"` (10% sampling of small blocks) or `"full"` (every allocation).
    pub mode: &'static str,
    /// Runs with a leak injected for this detector.
    pub injected: u64,
    /// Of those, runs where it found the leak.
    pub found: u64,
    /// Injected leaks that are large or repeat at least ten times.
    pub eligible: u64,
    /// Of those, found.
    pub eligible_found: u64,
    /// Clean runs checked.
    pub clean_runs: u64,
    /// Clean runs where this detector reported anything.
    pub false_positives: u64,
}

impl LeakcheckRow {
    /// Right verdicts over all runs: injected leaks found plus clean runs left silent,
    /// over injected plus clean runs (the seed's `leak_detection_accuracy`, target
    /// > 99%). `None` without runs.
    pub fn accuracy(&self) -> Option<f64> {
        let runs = self.injected + self.clean_runs;
        (runs > 0)
            .then(|| (self.found + self.clean_runs - self.false_positives) as f64 / runs as f64)
    }

    /// Clean runs where the detector reported anything, over clean runs (the seed's
    /// `false_positive_rate`, target < 1%). `None` without clean runs.
    pub fn false_positive_rate(&self) -> Option<f64> {
        (self.clean_runs > 0).then(|| self.false_positives as f64 / self.clean_runs as f64)
    }
}

/// The suite's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeakcheckReport {
    /// One row per detector and mode.
    pub rows: Vec<LeakcheckRow>,
    /// Seeds run.
    pub seeds: u64,
}

const DETECTORS: [&str; 5] = ["accounting", "scope", "growth", "relationship", "site"];

#[derive(Debug, Clone, Copy)]
enum Shape {
    Small,
    SmallTimes10,
    Large,
}

impl Shape {
    fn of(seed: u64) -> Self {
        match seed % 3 {
            0 => Shape::Small,
            1 => Shape::SmallTimes10,
            _ => Shape::Large,
        }
    }
    fn reps(self) -> usize {
        match self {
            Shape::SmallTimes10 => 10,
            _ => 1,
        }
    }
    fn eligible(self) -> bool {
        !matches!(self, Shape::Small)
    }
}

/// xorshift64*: the suite needs reproducible numbers, not a statistics library.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Log-uniform in `lo..hi`.
    fn log_uniform(&mut self, lo: usize, hi: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
        (a + u * (b - a)).exp() as usize
    }
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size.max(1), 64).expect("valid layout")
}

/// What one run saw.
struct Outcome {
    accounting: bool,
    findings: Vec<LeakFinding>,
    /// `file:line:` of the injected allocation, for the site detector.
    site: Option<String>,
}

fn leak_size(shape: Shape, rng: &mut Rng) -> usize {
    match shape {
        Shape::Large => 2 << 20,
        _ => 64 + rng.below(4000) as usize,
    }
}

fn run_one(
    tracking: TrackingConfig,
    seed: u64,
    steps: usize,
    inject: Option<&str>,
) -> Result<Outcome, String> {
    let cfg = MemoryConfig::default().tracking(tracking).leak(LeakConfig {
        on_shutdown: ShutdownMode::Silent,
        ..LeakConfig::default()
    });
    let mm = MemoryManager::new(cfg).map_err(|e| e.to_string())?;
    let mut rng = Rng::new(seed);
    let shape = Shape::of(seed);
    let inject_step = 4 + rng.below((steps / 4) as u64) as usize;
    let check = LeakCheck::start(&mm);
    let mut site = None;
    {
        let weights: Vec<_> = (0..4)
            .map(|_| mm.allocate(layout(rng.log_uniform(64 << 10, 2 << 20))))
            .collect();
        for w in &weights {
            w.persist();
        }
        let mut kv = Vec::new();
        let mut kept = Vec::new();
        for step in 0..steps {
            {
                let _s = mm.scope("step");
                if step < 6 {
                    let block = mm.allocate(layout(16 << 10));
                    block.persist();
                    kv.push(block);
                }
                let temps: Vec<_> = (0..5 + rng.below(15))
                    .map(|_| mm.allocate(layout(rng.log_uniform(64, 2 << 20))))
                    .collect();
                let parent = mm.allocate(layout(rng.log_uniform(256, 64 << 10)));
                let view = mm.allocate(layout(64));
                mm.link(&view, &parent);
                match inject {
                    Some("scope") | Some("site") if step == inject_step => {
                        let size = leak_size(shape, &mut rng);
                        for _ in 0..shape.reps() {
                            let (a, line) = (mm.allocate(layout(size)), line!());
                            site = Some(format!("{}:{line}:", file!()));
                            kept.push(a);
                        }
                    }
                    Some("growth") if step >= inject_step => {
                        let size = 1024 + rng.below(7 * 1024) as usize;
                        kept.push(mm.allocate(layout(size)));
                    }
                    _ => {}
                }
                drop((view, parent, temps));
            }
            if step == inject_step {
                match inject {
                    Some("accounting") => {
                        let size = leak_size(shape, &mut rng);
                        for _ in 0..shape.reps() {
                            std::mem::forget(mm.allocate(layout(size)));
                        }
                    }
                    Some("relationship") => {
                        let size = leak_size(shape, &mut rng);
                        for _ in 0..shape.reps() {
                            let a = mm.allocate(layout(size));
                            let b = mm.allocate(layout(64));
                            mm.link(&a, &b);
                            mm.link(&b, &a);
                            std::mem::forget(a);
                            std::mem::forget(b);
                        }
                    }
                    _ => {}
                }
            }
        }
        let findings = mm.check_leaks();
        drop((kept, kv, weights));
        // Accounting judges the end state: only forgotten blocks are still live.
        let accounting = check.leaks().allocations > 0;
        Ok(Outcome {
            accounting,
            findings,
            site,
        })
    }
}

fn flagged(o: &Outcome, detector: &str) -> bool {
    match detector {
        "accounting" => o.accounting,
        "site" => o.findings.iter().any(|f| f.site.is_some()),
        d => o.findings.iter().any(|f| f.detector == d),
    }
}

fn found(o: &Outcome, detector: &str, shape: Shape, full: bool) -> bool {
    if detector != "site" {
        return flagged(o, detector);
    }
    // One finding at the injected site; in full tracking it must count every repeat.
    let Some(site) = &o.site else { return false };
    let at: Vec<_> = o
        .findings
        .iter()
        .filter(|f| {
            f.site
                .as_deref()
                .is_some_and(|s| s.starts_with(site.as_str()))
        })
        .collect();
    at.len() == 1 && (!full || at[0].count == shape.reps())
}

/// Runs the suite; writes the JSON file when asked.
pub fn run(args: &LeakcheckArgs) -> Result<LeakcheckReport, String> {
    let mut rows = Vec::new();
    for (mode, tracking) in [
        ("default", TrackingConfig::default()),
        ("full", TrackingConfig::full()),
    ] {
        let mut mode_rows: Vec<LeakcheckRow> = DETECTORS
            .iter()
            .map(|&detector| LeakcheckRow {
                detector,
                mode,
                injected: 0,
                found: 0,
                eligible: 0,
                eligible_found: 0,
                clean_runs: 0,
                false_positives: 0,
            })
            .collect();
        for seed in args.first_seed..args.first_seed + args.seeds {
            let clean = run_one(tracking.clone(), seed, args.steps, None)?;
            for row in mode_rows.iter_mut() {
                row.clean_runs += 1;
                row.false_positives += u64::from(flagged(&clean, row.detector));
            }
            let shape = Shape::of(seed);
            for row in mode_rows.iter_mut() {
                let o = run_one(tracking.clone(), seed, args.steps, Some(row.detector))?;
                let hit = found(&o, row.detector, shape, mode == "full");
                let eligible = shape.eligible() || row.detector == "growth";
                row.injected += 1;
                row.found += u64::from(hit);
                row.eligible += u64::from(eligible);
                row.eligible_found += u64::from(eligible && hit);
            }
        }
        rows.extend(mode_rows);
    }
    let report = LeakcheckReport {
        rows,
        seeds: args.seeds,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(report)
}

impl LeakcheckReport {
    /// `{"leakcheck": [{"detector": D, "mode": M, "injected": N, "found": N,
    /// "clean_runs": N, "false_positives": N}, ...]}`
    pub fn to_json(&self) -> String {
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|r| {
                format!(
                    "{{\"detector\": \"{}\", \"mode\": \"{}\", \"injected\": {}, \"found\": {}, \
                     \"clean_runs\": {}, \"false_positives\": {}}}",
                    r.detector, r.mode, r.injected, r.found, r.clean_runs, r.false_positives
                )
            })
            .collect();
        format!("{{\"leakcheck\": [{}]}}\n", rows.join(", "))
    }
}

fn pct(a: u64, b: u64) -> String {
    if b == 0 {
        "-".to_string()
    } else {
        format!("{:.1}%", 100.0 * a as f64 / b as f64)
    }
}

/// A share in percent with the verdict against its target: `99.2% met`, `97.0% MISSED`.
fn verdict(v: Option<f64>, met: impl Fn(f64) -> bool) -> String {
    match v {
        Some(v) => format!(
            "{:.1}% {}",
            100.0 * v,
            if met(v) { "met" } else { "MISSED" }
        ),
        None => "-".to_string(),
    }
}

impl fmt::Display for LeakcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "leakcheck: {} seeds per leak kind and mode (one clean run per seed)",
            self.seeds
        )?;
        let mut t = crate::bench::report::grid(
            &[
                "detector",
                "mode",
                "injected",
                "found",
                "recall",
                "large-or-x10",
                "clean",
                "FP",
                "FP rate",
                "accuracy(>99%)",
                "FP rate(<1%)",
            ],
            2,
        );
        for r in &self.rows {
            t.add_row([
                r.detector.to_string(),
                r.mode.to_string(),
                r.injected.to_string(),
                r.found.to_string(),
                pct(r.found, r.injected),
                format!(
                    "{}/{} {}",
                    r.eligible_found,
                    r.eligible,
                    pct(r.eligible_found, r.eligible)
                ),
                r.clean_runs.to_string(),
                r.false_positives.to_string(),
                pct(r.false_positives, r.clean_runs),
                verdict(r.accuracy(), |a| a > 0.99),
                verdict(r.false_positive_rate(), |x| x < 0.01),
            ]);
        }
        f.write_str(&crate::bench::report::render(&t))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_suite_finds_every_eligible_leak_without_false_alarms() {
        let args = LeakcheckArgs {
            seeds: 3,
            steps: 40,
            ..LeakcheckArgs::default()
        };
        let r = run(&args).unwrap();
        assert_eq!(r.rows.len(), 10);
        for row in &r.rows {
            assert_eq!(row.false_positives, 0, "{r}");
            if row.detector != "site" || row.mode == "full" {
                assert_eq!(row.eligible_found, row.eligible, "{r}");
            }
            if row.mode == "full" {
                assert_eq!(row.found, row.injected, "{r}");
            }
        }
        let full_scope = r
            .rows
            .iter()
            .find(|x| x.detector == "scope" && x.mode == "full")
            .unwrap();
        assert_eq!(
            full_scope.accuracy(),
            Some(1.0),
            "found all, no false alarm"
        );
        assert_eq!(full_scope.false_positive_rate(), Some(0.0));
        let missed = LeakcheckRow {
            found: full_scope.found - 1,
            false_positives: 1,
            ..full_scope.clone()
        };
        let runs = (missed.injected + missed.clean_runs) as f64;
        assert_eq!(missed.accuracy(), Some((runs - 2.0) / runs));
        let text = r.to_string();
        assert!(
            text.contains("accuracy(>99%)") && text.contains("100.0% met"),
            "{text}"
        );
        let json = r.to_json();
        assert!(json.starts_with("{\"leakcheck\": [{\"detector\": \"accounting\""));
        assert_eq!(json.matches("\"false_positives\"").count(), 10);
        // The table: a header and one row per detector and mode, columns lined up (the
        // FP rate, right-aligned, ends where its header does).
        let text = r.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 12, "{text}");
        assert!(
            lines[1].starts_with("detector") && lines[1].ends_with("FP rate(<1%)"),
            "{text}"
        );
        for (line, row) in lines[2..].iter().zip(&r.rows) {
            assert!(line.starts_with(row.detector), "{text}");
            assert_eq!(line.len(), lines[1].len(), "{text}");
        }
    }
}
