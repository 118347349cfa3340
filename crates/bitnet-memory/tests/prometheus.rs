//! `MetricsSnapshot::to_prometheus` is text that Prometheus's own checker accepts:
//! piped through `promtool check metrics` (Debian's `prometheus` package). Without
//! promtool the test says so and passes, unless `BITNET_REQUIRE_PROMTOOL=1` (CI sets it).

use bitnet_memory::{MemoryConfig, MemoryManager, TrackingConfig};
use std::alloc::Layout;
use std::io::Write;
use std::process::{Command, Stdio};

/// A manager that has done a bit of everything: small and large blocks, frees, a trim,
/// tracked allocations, timed latencies.
fn busy_metrics() -> String {
    let mm = MemoryManager::new(MemoryConfig::default().tracking(TrackingConfig::full())).unwrap();
    let mut keep = Vec::new();
    for i in 0..2000usize {
        let a = mm.allocate(Layout::from_size_align(16 + (i * 37) % 5000, 16).unwrap());
        if i % 3 == 0 {
            keep.push(a);
        }
    }
    keep.push(mm.allocate(Layout::from_size_align(3 << 20, 64).unwrap()));
    drop(mm.allocate(Layout::from_size_align(9 << 20, 64).unwrap()));
    mm.trim();
    let text = mm.metrics().to_prometheus();
    drop(keep);
    text
}

#[test]
fn summary_has_sum_and_count_in_base_units() {
    let text = busy_metrics();
    assert!(text.contains("# TYPE bitnet_memory_allocation_latency_seconds summary"));
    assert!(text.contains("bitnet_memory_allocation_latency_seconds_sum "));
    assert!(text.contains("bitnet_memory_allocation_latency_seconds_count "));
    assert!(!text.contains("_ns"), "an abbreviated unit in:\n{text}");
}

#[test]
fn promtool_accepts_the_text() {
    let text = busy_metrics();
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let required = std::env::var("BITNET_REQUIRE_PROMTOOL").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "BITNET_REQUIRE_PROMTOOL=1 but promtool cannot run ({e}): apt-get install prometheus"
            );
            eprintln!(
                "SKIPPED: promtool not found ({e}); apt-get install prometheus to run this check"
            );
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the text ({}):\n{}{}\n--- text ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
