//! The bench command runs end to end and writes the JSON shape other tools rely on. (A
//! smoke test of the command, not a benchmark: no timing is checked.)

#[test]
fn quick_bench_writes_every_row_in_the_stable_shape() {
    let json = std::env::temp_dir().join(format!("bitnet-mem-bench-{}.json", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bitnet-mem"))
        .args([
            "bench",
            "--quick",
            "--workload",
            "small-mix",
            "--workload",
            "cross-thread",
        ])
        .args(["--repeats", "1", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(&json).unwrap();
    let rows = v["results"].as_array().unwrap();
    // small-mix: 6 allocators (ours through the manager and through PoolAlloc, 3 peers,
    // the limit) at 1 thread, 5 at 2 (no limit); cross-thread: 5 and 5.
    assert_eq!(rows.len(), 6 + 5 + 5 + 5);
    let pool_alloc = rows
        .iter()
        .filter(|r| r["allocator"] == "pool-alloc")
        .count();
    assert_eq!(pool_alloc, 4, "a PoolAlloc row in every run");
    for r in rows {
        for key in [
            "workload",
            "allocator",
            "threads",
            "pairs",
            "median_ns_per_pair",
            "min_ns_per_pair",
            "max_ns_per_pair",
            "peak_live_bytes",
            "peak_reserved_bytes",
        ] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
        let (min, med, max) = (
            r["min_ns_per_pair"].as_f64().unwrap(),
            r["median_ns_per_pair"].as_f64().unwrap(),
            r["max_ns_per_pair"].as_f64().unwrap(),
        );
        assert!(min > 0.0 && min <= med && med <= max, "{r}");
        assert!(r["peak_live_bytes"].as_u64().unwrap() > 0, "{r}");
        assert!(r["peak_reserved_bytes"].as_u64().unwrap() > 0, "{r}");
        let t = r["threads"].as_u64().unwrap();
        let pairs = r["pairs"].as_u64().unwrap();
        assert_eq!(pairs, 20_000 * t, "{r}");
    }
    let ours: Vec<_> = rows
        .iter()
        .filter(|r| r["allocator"] == "bitnet-memory")
        .collect();
    assert_eq!(ours.len(), 4);
    assert!(ours
        .iter()
        .all(|r| r["metrics_peak_reserved_bytes"].as_u64().unwrap() > 0));
    assert!(stdout.contains("small-mix"), "{stdout}");
}

#[test]
fn quick_bench_prints_the_reserved_over_live_section_for_churn() {
    let json = std::env::temp_dir().join(format!(
        "bitnet-mem-bench-churn-{}.json",
        std::process::id()
    ));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bitnet-mem"))
        .args(["bench", "--quick", "--workload", "churn", "--threads", "1"])
        .args(["--repeats", "1", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(&json).unwrap();
    // One churn row per allocator, the limit included (one thread).
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|r| r["workload"] == "churn"));
    let section = v["reserved_over_live"].as_array().unwrap();
    assert_eq!(section.len(), 1, "only the workloads that ran");
    let s = &section[0];
    assert_eq!(s["workload"], "churn");
    assert_eq!(s["threads"], 1);
    // Every allocator has its figure, equal to its row's.
    for r in rows {
        let name = r["allocator"].as_str().unwrap();
        let ratio = s["reserved_over_live"][name].as_f64().unwrap();
        assert_eq!(ratio, r["reserved_over_live"].as_f64().unwrap(), "{name}");
        assert!(ratio > 0.0, "{name}");
    }
    assert!(s["ours_metrics_reserved_over_live"].as_f64().unwrap() > 0.0);
    // The verdict follows from the figures.
    let ours = s["reserved_over_live"]["bitnet-memory"].as_f64().unwrap();
    let met = ours <= 1.10
        && ["glibc", "mimalloc", "jemalloc"]
            .iter()
            .all(|p| ours < s["reserved_over_live"][p].as_f64().unwrap());
    assert_eq!(s["met"].as_bool().unwrap(), met, "{s}");
    assert!(stdout.contains("peak reserved / peak live"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("churn") && (l.ends_with(" met") || l.contains(" missed ("))),
        "{stdout}"
    );
}

#[test]
fn a_scale_of_zero_is_refused_with_a_reason() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bitnet-mem"))
        .args([
            "bench",
            "--quick",
            "--workload",
            "bitnet-inference",
            "--scale",
            "0",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "--scale 0 ran: {stderr}");
    assert!(stderr.contains("1 or more"), "{stderr}");
}

#[cfg(not(feature = "wgpu"))]
#[test]
fn the_gpu_device_without_the_feature_says_how_to_get_it() {
    for cmd in [
        &["bench", "--device", "wgpu", "--quick"][..],
        &["demo", "--device", "wgpu"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bitnet-mem"))
            .args(cmd)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd:?} ran without the feature");
        assert!(stderr.contains("--features wgpu"), "{cmd:?}: {stderr}");
    }
}
