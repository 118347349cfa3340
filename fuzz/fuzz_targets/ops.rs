//! The fuzz twin of `crates/bitnet-memory/tests/ops_model/main.rs`: the same interpreter and
//! shadow model (`include!`d from the test), with the operations decoded from the
//! fuzzer's bytes. `cargo +nightly fuzz run ops -- -max_total_time=600 -detect_leaks=0`
//! (LeakSanitizer reports the thread-exit records of std's spawned threads, not ours).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
mod interp {
    include!("../../crates/bitnet-memory/tests/ops_model/interp.rs");
}

use interp::{run, Op, Setup};

/// Operations from 6 bytes each: a kind, then its fields.
fn decode(data: &[u8]) -> (Setup, Vec<Op>) {
    let b = |i: usize| data.get(i).copied().unwrap_or(0);
    let setup = Setup {
        strategy: b(0),
        budget_mib: if b(1) % 3 == 0 { b(1) } else { 0 },
        thread_cache: b(2) % 2 == 0,
    };
    let ops = data
        .get(3..)
        .unwrap_or(&[])
        .chunks_exact(6)
        .take(200)
        .map(|c| {
            let w = u16::from_le_bytes([c[1], c[2]]);
            let (x, y) = (c[3], c[4]);
            match c[0] % 16 {
                0..=3 => Op::Alloc { size_log: x % 24, frac: w, align_log: y % 17 },
                4 | 5 => Op::Free { idx: w },
                6 => Op::Write { idx: w, byte: x },
                7 => Op::FreeRemote { idx: w },
                8 => Op::AllocRemote { size_log: x % 21, frac: w },
                9 => Op::AllocMovable { size_log: x % 21, frac: w },
                10 => Op::FreeMovable { idx: w },
                11 => Op::Compact,
                12 => Op::Trim,
                13 => if x % 2 == 0 { Op::ScopeOpen } else { Op::ScopeClose },
                14 => Op::AllocRaw { size_log: x % 21 },
                _ => Op::FreeRaw { idx: w },
            }
        })
        .collect();
    (setup, ops)
}

fuzz_target!(|data: &[u8]| {
    let (setup, ops) = decode(data);
    run(setup, &ops);
});
