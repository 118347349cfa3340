//! Replaying a small hand-written trace gives exact live and peak figures, through the
//! stream, through the pool, and through the `replay` command.

use bitnet_mem::contenders::{Contender, Pool};
use bitnet_mem::run::run_stream;
use bitnet_mem::workload::from_trace;
use bitnet_memory::trace::Trace;
use bitnet_memory::{MemoryConfig, MemoryManager};

/// Live bytes after each line: 1000, 3000, 2000, 2100, 102100, 101100, 1100, 5100, 5100-...
const TRACE: &str = "op,id,size,align,thread,t_ns
a,1,1000,16,0,0
a,2,2000,64,0,10
f,1,0,0,0,20
a,3,100,16,1,30
a,4,100000,4096,0,40
f,2,0,0,1,50
f,4,0,0,0,60
a,5,4000,16,0,70
a,6,3000000,64,0,80
f,3,0,0,0,90
";
const PEAK: u64 = 100 + 4000 + 3_000_000;
const LIVE_AT_END: u64 = 4000 + 3_000_000;

#[test]
fn the_trace_itself_knows_its_peak_and_end() {
    let t = Trace::parse_str(TRACE).unwrap();
    let s = t.summary();
    assert_eq!(s.peak.live_bytes, PEAK);
    assert_eq!(s.peak.event_index, 8);
    assert_eq!(s.live_bytes_at_end, LIVE_AT_END);
    assert_eq!((s.allocs, s.frees, s.live_blocks_at_end), (6, 4, 2));
}

#[test]
fn the_stream_and_the_pool_agree_with_the_trace() {
    let t = Trace::parse_str(TRACE).unwrap();
    let stream = from_trace(&t);
    assert_eq!(stream.peak_live, PEAK);
    assert_eq!(stream.allocs, 6);
    assert_eq!(stream.ops.len(), 10);

    // Step by step through the pool: live bytes after every event match the trace's.
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    let mut pool = Pool(&mm);
    let mut slots: Vec<Option<_>> = (0..stream.slots).map(|_| None).collect();
    for (op, expected) in stream.ops.iter().zip(t.live_bytes()) {
        if op.free {
            pool.free(slots[op.slot as usize].take().expect("live"));
        } else {
            let mut b = pool.alloc(op.size, 1 << op.align_log2).expect("served");
            assert_eq!(Pool::ptr(&mut b).addr() % (1 << op.align_log2), 0);
            slots[op.slot as usize] = Some(b);
        }
        assert_eq!(mm.metrics().live_bytes() as u64, expected);
    }
    assert_eq!(mm.metrics().live_bytes() as u64, LIVE_AT_END);
    assert_eq!(mm.metrics().peak_live_bytes() as u64, PEAK);
    drop(slots);

    // The runner frees what the trace left live, after the timed part.
    let mm = MemoryManager::new(MemoryConfig::default()).unwrap();
    run_stream(&mut Pool(&mm), &stream).expect("runs to the end");
    let m = mm.metrics();
    assert_eq!(m.peak_live_bytes() as u64, PEAK);
    assert_eq!(m.live_bytes(), 0);
}

/// Runs `bitnet-mem replay` on [`TRACE`] with `args` (one timed run, no warm-up) and
/// `--json`; its standard output and its JSON, after checking that it succeeded.
fn replay(name: &str, args: &[&str]) -> (String, serde_json::Value) {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("bitnet-mem-{name}-{}.csv", std::process::id()));
    std::fs::write(&path, TRACE).unwrap();
    let json = path.with_extension("json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bitnet-mem"))
        .args(["replay", "--repeats", "1", "--warmup", "0"])
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(&json).unwrap();
    (stdout, v)
}

#[test]
fn the_replay_command_prints_the_exact_peak() {
    let (stdout, v) = replay("peak", &["--no-resident"]);
    assert!(
        stdout.contains("10 events (6 allocations, 4 frees)"),
        "{stdout}"
    );
    let rows = v["results"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        6,
        "ours through the manager and through PoolAlloc, three peers and the limit"
    );
    for r in rows {
        assert_eq!(r["peak_live_bytes"], PEAK, "{r}");
        assert_eq!(r["pairs"], 6);
        assert_eq!(r["workload"], "replay");
    }
    assert_eq!(v["trace"]["peak_live_bytes"], PEAK);
    assert!(
        v["pages"]["huge_pages_disabled"].is_boolean(),
        "{}",
        v["pages"]
    );
    // No fresh processes: nothing to judge the target by.
    assert!(!stdout.contains("target ("), "{stdout}");
    assert!(v.get("target").is_none());
}

#[test]
#[cfg(target_os = "linux")]
fn no_huge_pages_disables_them_for_the_run_and_says_so() {
    let (stdout, v) = replay(
        "small",
        &[
            "--no-huge-pages",
            "--allocator",
            "bitnet-memory",
            "--cold-runs",
            "1",
        ],
    );
    // The header reads the setting back from the kernel rather than echoing the flag.
    assert!(stdout.contains("4 KiB pages only"), "{stdout}");
    assert_eq!(v["pages"]["huge_pages_disabled"], true);
    assert_eq!(v["results"][0]["pairs"], 6);
}

#[test]
fn with_a_peer_and_fresh_processes_the_replay_judges_the_target() {
    let (stdout, v) = replay(
        "target",
        &[
            "--allocator",
            "bitnet-memory",
            "--allocator",
            "glibc",
            "--cold-runs",
            "1",
        ],
    );
    // Which way it goes on a 10-event trace is noise; that it is judged, and how, is not.
    let line = stdout
        .lines()
        .find(|l| l.starts_with("target (resident growth / live peak <= 1.10"))
        .unwrap_or_else(|| panic!("no target line:\n{stdout}"));
    let met = v["target"]["met"].as_bool().expect("target.met");
    assert_eq!(line.contains("): met ("), met, "{line}");
    assert_eq!(v["target"]["peers"], serde_json::json!(["glibc"]));
}

#[test]
fn a_bad_trace_is_refused_with_its_line() {
    let path = std::env::temp_dir().join(format!("bitnet-mem-bad-{}.csv", std::process::id()));
    std::fs::write(
        &path,
        "op,id,size,align,thread,t_ns\na,1,10,8,0,0\nf,2,0,0,0,1\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bitnet-mem"))
        .args(["replay", "--no-resident"])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3: free of unknown id 2"), "{err}");
}
