//! `RecordingAlloc` as the global allocator of this test binary: what the program does is
//! what the trace says.

use bitnet_memory::global::RecordingAlloc;
use bitnet_memory::trace::{Op, Trace};
use std::alloc::System;
use std::sync::Mutex;

#[global_allocator]
static GLOBAL: RecordingAlloc<System> = RecordingAlloc::new(System);

/// One recording at a time.
static ONE: Mutex<()> = Mutex::new(());

fn trace_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "bitnet-recording-{}-{name}.csv",
        std::process::id()
    ))
}

#[test]
fn records_a_program_that_parses_and_matches_what_it_did() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let path = trace_path("program");
    let keep = vec![0u8; 1];
    GLOBAL.start(&path).unwrap();
    let a = vec![1u8; 12_345];
    let b: Vec<u64> = Vec::with_capacity(1000);
    let c = Box::new([0u8; 40_000]);
    drop(a);
    drop(keep); // allocated before the start: its free is left out
    let strings: Vec<String> = (0..20_000).map(|i| format!("s{i}")).collect();
    drop(strings);
    let s = GLOBAL.finish().unwrap();
    drop((b, c));

    let t = Trace::from_path(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(s.events as usize, t.len());
    assert!(s.frees_skipped >= 1, "the free of `keep` must be skipped");
    // All three named blocks are there, with their sizes and alignments.
    let allocs: Vec<_> = t.events().iter().filter(|e| e.op == Op::Alloc).collect();
    assert!(allocs.iter().any(|e| e.size == 12_345 && e.align == 1));
    assert!(allocs.iter().any(|e| e.size == 8000 && e.align == 8));
    assert!(allocs.iter().any(|e| e.size == 40_000));
    assert!(allocs.len() >= 20_003, "{} allocations", allocs.len());
    // `b` and `c` are live at the end; the 12,345-byte block was freed.
    let l = t.lifetimes();
    assert!(l.iter().any(|x| x.size == 12_345 && x.free_index.is_some()));
    assert!(l.iter().any(|x| x.size == 8000 && x.free_index.is_none()));
    assert!(l.iter().any(|x| x.size == 40_000 && x.free_index.is_none()));
    // Times never go backwards (taken under the recorder's lock).
    assert!(t.events().windows(2).all(|w| w[0].t_ns <= w[1].t_ns));
}

#[test]
fn records_threads_and_cross_thread_frees() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let path = trace_path("threads");
    GLOBAL.start(&path).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let h = std::thread::spawn(move || {
        for i in 0..1000 {
            tx.send(vec![0u8; 100 + i]).unwrap();
        }
    });
    let mut n = 0;
    for v in rx {
        n += v.len();
    }
    h.join().unwrap();
    let s = GLOBAL.finish().unwrap();
    assert!(GLOBAL.finish().is_err(), "finishing twice is an error");
    let t = Trace::from_path(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(n, (100..1100).sum::<usize>());
    assert_eq!(s.events as usize, t.len());
    let sum = t.summary();
    assert!(sum.threads >= 2);
    assert!(
        sum.cross_thread_frees >= 1000,
        "{} cross-thread frees",
        sum.cross_thread_frees
    );
}
