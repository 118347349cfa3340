//! Allocation sites through every layer of bitnet-tensor: a tensor made by the user's
//! code is attributed to the user's line (not to `storage.rs`), in the leak report and in
//! the snapshot, for the constructors and for every op that allocates its output.

use bitnet_memory::{LeakCheck, MemoryConfig, MemoryManager, TrackingConfig};
use bitnet_tensor::ops::{self, KvCache};
use bitnet_tensor::{DType, Exec, Provider, Tensor};

/// `file:line` of the line that calls this macro.
macro_rules! here {
    () => {
        format!("{}:{}:", file!(), line!())
    };
}

/// `(value of expr, file:line of this call)`: one line, so formatting cannot split the
/// call from the line it is compared with.
macro_rules! at {
    ($e:expr) => {
        ($e, here!())
    };
}

fn manager() -> MemoryManager {
    MemoryManager::new(MemoryConfig::default().tracking(TrackingConfig::full())).unwrap()
}

/// Every site of a leak check's report and of the snapshot's live blocks.
fn sites(mm: &MemoryManager, check: &LeakCheck<'_>) -> (Vec<String>, Vec<String>) {
    let report = check.leaks().sites.into_iter().map(|g| g.site).collect();
    let snap = mm
        .snapshot()
        .devices
        .iter()
        .flat_map(|d| &d.pools)
        .flat_map(|p| &p.chunks)
        .flat_map(|c| &c.blocks)
        .filter_map(|b| b.site.clone())
        .collect();
    (report, snap)
}

#[track_caller]
fn assert_site(mm: &MemoryManager, check: &LeakCheck<'_>, line: &str) {
    let (report, snap) = sites(mm, check);
    assert!(
        report.iter().any(|s| s.starts_with(line)),
        "leak report sites {report:?} lack {line}"
    );
    assert!(
        snap.iter().any(|s| s.starts_with(line)),
        "snapshot sites {snap:?} lack {line}"
    );
    assert!(
        !report
            .iter()
            .chain(&snap)
            .any(|s| s.contains("bitnet-tensor/src")),
        "a site inside bitnet-tensor: {report:?} {snap:?}"
    );
}

#[test]
fn constructors_name_the_callers_line() {
    let mm = manager();
    let p = Provider::Manager(&mm);
    let check = LeakCheck::start(&mm);
    let (t, line) = at!(Tensor::new(&p, DType::F32, &[64, 64]).unwrap());
    assert_site(&mm, &check, &line);
    drop(t);
    let check = LeakCheck::start(&mm);
    let (t, line) = at!(Tensor::zeros(&p, DType::I8, &[100]).unwrap());
    assert_site(&mm, &check, &line);
    drop(t);
    let check = LeakCheck::start(&mm);
    let (t, line) = at!(Tensor::from_f32(&p, &[2], &[1.0, 2.0]).unwrap());
    assert_site(&mm, &check, &line);
    drop(t);
    let check = LeakCheck::start(&mm);
    let (t, line) = at!(Tensor::from_i8(&p, &[2], &[1, 2]).unwrap());
    assert_site(&mm, &check, &line);
    drop(t);
    let check = LeakCheck::start(&mm);
    let (t, line) = at!(Tensor::from_ternary(&p, &[4], &[1, 0, -1, 1]).unwrap());
    assert_site(&mm, &check, &line);
    drop(t);
    let m = Tensor::from_f32(&p, &[2, 3], &[1., 2., 3., 4., 5., 6.]).unwrap();
    let tr = m.transpose(0, 1).unwrap();
    let check = LeakCheck::start(&mm);
    let (t, line) = at!(tr.contiguous(&p).unwrap());
    assert_site(&mm, &check, &line);
    drop(t);
    let check = LeakCheck::start(&mm);
    let (t, line) = at!(p.buffer(4096).unwrap());
    assert_site(&mm, &check, &line);
    drop(t);
}

#[test]
fn every_op_names_the_callers_line() {
    let mm = manager();
    let p = Provider::Manager(&mm);
    let ex = Exec::sequential();
    let x = Tensor::from_f32(&p, &[1, 8], &[0.5, -1.0, 2.0, 0.1, 0.0, 3.0, -2.0, 1.0]).unwrap();
    let wf = Tensor::from_f32(&p, &[4, 8], &[0.25; 32]).unwrap();
    let g = Tensor::from_f32(&p, &[8], &[1.0; 8]).unwrap();
    let w = ops::absmean_quantize(&wf, &p).unwrap();
    let xq = ops::absmax_quantize(&x, &p).unwrap();

    macro_rules! check_op {
        ($e:expr) => {{
            let check = LeakCheck::start(&mm);
            let (out, line) = at!($e);
            assert_site(&mm, &check, &line);
            drop(out);
        }};
    }
    check_op!(ops::absmean_quantize(&wf, &p).unwrap());
    check_op!(ops::absmax_quantize(&x, &p).unwrap());
    check_op!(ops::bitlinear(&xq, &w, &p, &ex).unwrap());
    check_op!(ops::linear(&x, &wf, &p, &ex).unwrap());
    let b = Tensor::from_f32(&p, &[4, 8], &[0.5; 32]).unwrap();
    let bt = b.transpose(0, 1).unwrap();
    check_op!(ops::matmul(&wf, &bt, &p, &ex).unwrap());
    check_op!(ops::rmsnorm(&x, &g, 1e-5, &p).unwrap());
    check_op!(ops::silu(&x, &p).unwrap());
    check_op!(ops::swiglu(&x, &x, &p).unwrap());
    check_op!(ops::softmax(&x, &p).unwrap());
    let table = Tensor::from_f32(&p, &[3, 8], &[0.1; 24]).unwrap();
    check_op!(ops::embedding(&table, &[2, 0], &p).unwrap());
    check_op!(KvCache::new(&p, 1, 4, 2, 4).unwrap());
    let mut cache = KvCache::new(&p, 1, 4, 2, 4).unwrap();
    let kv = Tensor::from_f32(&p, &[1, 8], &[0.3; 8]).unwrap();
    cache.write(0, &kv, &kv).unwrap();
    cache.advance().unwrap();
    let q = Tensor::from_f32(&p, &[2, 4], &[0.2; 8]).unwrap();
    check_op!(ops::attention(&q, &cache, 0, 1, &p, &ex).unwrap());
}

/// The leak report a user reads names their line, not bitnet-tensor's.
#[test]
fn a_leaked_tensor_is_reported_at_the_users_line() {
    let mm = manager();
    let p = Provider::Manager(&mm);
    let check = LeakCheck::start(&mm);
    let x = Tensor::from_f32(&p, &[1, 4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let (leaked, line) = at!(ops::absmax_quantize(&x, &p).unwrap());
    drop(x);
    let text = check.leaks().to_string();
    println!("{text}"); // the report a user reads (`-- --nocapture`)
    assert!(text.contains(&line), "report:\n{text}");
    assert!(!text.contains("storage.rs"), "report:\n{text}");
    std::mem::forget(leaked);
}
