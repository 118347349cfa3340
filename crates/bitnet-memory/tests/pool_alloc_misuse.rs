//! Misuse through `PoolAlloc` (issue 22): a double free, or a free of a pointer the pool
//! never gave out, aborts with a message naming the pointer instead of corrupting the free
//! lists (two owners of one block). Each case runs in a child process: this test binary
//! run again with `MISUSE_CASE` set, whose stderr and exit status the parent checks.

use bitnet_memory::global::PoolAlloc;
use bitnet_memory::MemoryConfig;
use std::alloc::{GlobalAlloc, Layout, System};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

fn hardened() -> MemoryConfig {
    MemoryConfig::default().hardened(true)
}

/// What the child does for each case; prints `ADDR=<pointer>` before the misuse.
fn child(case: &str) {
    let p = if case.starts_with("hardened") {
        PoolAlloc::with_config(hardened)
    } else {
        PoolAlloc::new()
    };
    let small = Layout::from_size_align(64, 8).unwrap();
    let large = Layout::from_size_align(8 << 20, 64).unwrap();
    let say = |q: *mut u8| println!("ADDR={:#x}", q.addr());
    // SAFETY: every call below is deliberate misuse of the contract, which the allocator
    // must catch before it touches its free lists; the child process ends there.
    unsafe {
        match case {
            "double_free_small" | "hardened_double_free_small" => {
                let a = p.alloc(small);
                let b = p.alloc(small);
                p.dealloc(a, small);
                p.dealloc(b, small);
                say(a);
                p.dealloc(a, small);
            }
            "double_free_small_other_thread" => {
                let a = p.alloc(small).addr();
                std::thread::scope(|s| {
                    s.spawn(|| p.dealloc(std::ptr::with_exposed_provenance_mut(a), small));
                });
                say(std::ptr::with_exposed_provenance_mut(a));
                // The block sits in the other thread's cache (kept after it exited).
                p.dealloc(std::ptr::with_exposed_provenance_mut(a), small);
            }
            "double_free_large" | "hardened_double_free_large" => {
                let a = p.alloc(large);
                p.dealloc(a, large);
                say(a);
                p.dealloc(a, large);
            }
            "foreign_large" | "hardened_foreign_small" => {
                let l = if case == "foreign_large" {
                    large
                } else {
                    small
                };
                let _warm = p.alloc(small);
                let f = System.alloc(l);
                say(f);
                p.dealloc(f, l);
            }
            "hardened_overflow" => {
                let a = p.alloc(small);
                a.add(64).write(0x41);
                say(a);
                p.dealloc(a, small);
            }
            "no_misuse" => {
                // Frees and reuse in every order, data in the blocks: no abort.
                for round in 0..1000 {
                    let a = p.alloc(small);
                    a.cast::<u64>().write_bytes(0xAB, 8);
                    let b = p.alloc(large);
                    p.dealloc(a, small);
                    let c = p.alloc(small);
                    p.dealloc(b, large);
                    p.dealloc(c, small);
                    if round % 100 == 0 {
                        p.manager().unwrap().trim();
                    }
                }
                println!("CLEAN");
            }
            other => panic!("unknown case {other}"),
        }
    }
}

#[test]
fn misuse_child() {
    if let Ok(case) = std::env::var("MISUSE_CASE") {
        child(&case);
    }
}

/// Runs `case` in a child; its stdout and stderr and whether it was aborted.
fn run(case: &str) -> (String, String, bool) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "misuse_child", "--nocapture", "--test-threads=1"])
        .env("MISUSE_CASE", case)
        .output()
        .unwrap();
    let aborted = out.status.signal() == Some(libc_sigabrt());
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        aborted,
    )
}

fn libc_sigabrt() -> i32 {
    6
}

/// The case aborts with a message naming the pointer the child printed and `what`.
fn assert_aborts(case: &str, what: &str) {
    let (stdout, stderr, aborted) = run(case);
    let addr = stdout
        .split("ADDR=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("{case}: no address printed; stdout {stdout} stderr {stderr}"));
    assert!(aborted, "{case}: not aborted; stderr: {stderr}");
    assert!(
        stderr.contains(&format!("pointer {addr} ")),
        "{case}: the message names another pointer than {addr}: {stderr}"
    );
    assert!(stderr.contains(what), "{case}: {stderr}");
    assert!(
        !stderr.contains("panicked"),
        "{case}: a panic, not an abort: {stderr}"
    );
}

#[test]
fn double_free_of_a_small_block_aborts_naming_it() {
    assert_aborts("double_free_small", "double free");
}

#[test]
fn double_free_of_a_block_cached_by_another_thread_aborts() {
    assert_aborts("double_free_small_other_thread", "double free");
}

#[test]
fn double_free_of_a_large_block_aborts() {
    assert_aborts("double_free_large", "does not hold");
}

#[test]
fn free_of_a_foreign_large_pointer_aborts() {
    assert_aborts("foreign_large", "does not hold");
}

#[test]
fn hardened_mode_catches_double_and_foreign_frees_of_every_size() {
    assert_aborts("hardened_double_free_small", "not live");
    assert_aborts("hardened_double_free_large", "not live");
    assert_aborts("hardened_foreign_small", "not live");
}

#[test]
fn hardened_mode_catches_a_write_past_the_end() {
    assert_aborts("hardened_overflow", "overflow");
}

#[test]
fn correct_use_never_aborts() {
    let (stdout, stderr, aborted) = run("no_misuse");
    assert!(!aborted, "{stderr}");
    assert!(stdout.contains("CLEAN"), "{stdout} {stderr}");
}
