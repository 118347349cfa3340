//! `GpuTensor`: CPU -> GPU -> CPU round trips, the tensor-level ops of `GpuRecorder`
//! against the CPU ops (bit for bit for quantisation and BitLinear), shape and dtype
//! checks, and the block going back to the device pool when a tensor is dropped. Skips
//! (saying why) when no GPU adapter exists, unless `BITNET_REQUIRE_GPU=1`.
#![cfg(feature = "wgpu")]

use bitnet_memory::device::wgpu::{WgpuBackend, WgpuOptions};
use bitnet_memory::{CpuBackend, DeviceId, MemoryConfig, MemoryManager};
use bitnet_tensor::gpu::{GpuDevice, GpuKernels, GpuRecorder, GpuTernaryWeight};
use bitnet_tensor::{ops, DType, Error, Exec, Provider, Tensor};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::OnceLock;

const GPU: DeviceId = DeviceId(1);

/// The GPU backend and its kernels, or `None` (after saying why) when there is none.
/// With `BITNET_REQUIRE_GPU=1` a missing GPU fails the test instead.
fn gpu() -> Option<&'static (WgpuBackend, GpuKernels)> {
    static GPU: OnceLock<Result<(WgpuBackend, GpuKernels), String>> = OnceLock::new();
    let got = GPU.get_or_init(|| {
        let g = WgpuBackend::new(&WgpuOptions::default()).map_err(|e| e.to_string())?;
        let k = GpuKernels::new(g.device()).map_err(|e| e.to_string())?;
        Ok((g, k))
    });
    match got {
        Ok(g) => Some(g),
        Err(why) => {
            if std::env::var("BITNET_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("BITNET_REQUIRE_GPU=1 and no GPU: {why}");
            }
            eprintln!("skipping GPU test: {why}");
            None
        }
    }
}

/// The CPU as device 0 and the GPU as device 1.
fn manager(gpu: &WgpuBackend) -> MemoryManager {
    MemoryManager::builder(MemoryConfig::default())
        .device(CpuBackend::new(), None)
        .device(gpu.clone(), None)
        .build()
        .expect("manager")
}

fn f32s(rng: &mut SmallRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-3.0f32..3.0)).collect()
}

#[test]
fn cpu_to_gpu_to_cpu_is_exact_for_every_dtype_and_shape() {
    let Some((g, _)) = gpu() else { return };
    let mm = manager(g);
    let dev = GpuDevice::new(&mm, g, GPU);
    let p = Provider::Manager(&mm); // CPU tensors from device 0 of the same manager
    let mut rng = SmallRng::seed_from_u64(5);
    for dims in [vec![1], vec![7], vec![3, 5], vec![2, 3, 4], vec![64, 129]] {
        let n: usize = dims.iter().product();
        let x = Tensor::from_f32(&p, &dims, &f32s(&mut rng, n)).unwrap();
        let q: Vec<i8> = (0..n).map(|_| rng.gen_range(-128i32..=127) as i8).collect();
        let xi = Tensor::from_i8(&p, &dims, &q).unwrap();
        for t in [&x, &xi] {
            let on = dev.upload(t).unwrap();
            assert_eq!((on.dtype(), on.dims()), (t.dtype(), t.dims()));
            assert_eq!(on.device(), GPU);
            assert_eq!(on.byte_len(), t.dtype().storage_bytes(n));
            let back = on.to_cpu(&p).unwrap();
            assert_eq!(back.dims(), t.dims());
            match t.dtype() {
                DType::F32 => {
                    let (a, b) = (back.as_f32().unwrap(), t.as_f32().unwrap());
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(a), bits(b), "{dims:?}");
                }
                _ => assert_eq!(back.as_i8().unwrap(), t.as_i8().unwrap(), "{dims:?}"),
            }
        }
    }
    // Ternary: 3 rows of 4 weights are 3 bytes, not a whole word.
    let w: Vec<i8> = (0..12).map(|i| [1, 0, -1][i % 3]).collect();
    let t = Tensor::from_ternary(&p, &[3, 4], &w).unwrap();
    let back = dev.upload(&t).unwrap().to_cpu(&Provider::Vec).unwrap();
    assert_eq!(back.as_ternary().unwrap(), t.as_ternary().unwrap());
    assert_eq!(back.to_vec_i8(), w);
    // A non-contiguous view goes up as its contiguous copy.
    let m = Tensor::from_f32(&p, &[2, 3], &[1., 2., 3., 4., 5., 6.]).unwrap();
    let tr = m.transpose(0, 1).unwrap();
    let back = dev.upload(&tr).unwrap().to_cpu(&p).unwrap();
    assert_eq!(back.dims(), &[3, 2]);
    assert_eq!(back.to_vec_f32(), [1., 4., 2., 5., 3., 6.]);
}

#[test]
fn quantize_and_bitlinear_on_gpu_tensors_equal_the_cpu_bit_for_bit() {
    let Some((g, kernels)) = gpu() else { return };
    let mm = manager(g);
    let dev = GpuDevice::new(&mm, g, GPU);
    let p = Provider::Vec;
    let mut rng = SmallRng::seed_from_u64(11);
    // k not a multiple of 16 (the slow path), a multiple (the fast one), one row and many.
    for (rows, n, k) in [(1, 7, 36), (3, 33, 64), (5, 16, 100), (2, 130, 256)] {
        let mut x = f32s(&mut rng, rows * k);
        x[0] = 127.0; // exact ties after scaling: round half away from zero
        x[1] = 2.5;
        let x = Tensor::from_f32(&p, &[rows, k], &x).unwrap();
        let wf = Tensor::from_f32(&p, &[n, k], &f32s(&mut rng, n * k)).unwrap();
        let w = ops::absmean_quantize(&wf, &p).unwrap();
        let want_q = ops::absmax_quantize(&x, &p).unwrap();
        let want_y = ops::bitlinear(&want_q, &w, &p, &Exec::sequential()).unwrap();

        let mut r = GpuRecorder::new(kernels, &dev);
        let xq = r.absmax_quantize(&dev.upload(&x).unwrap()).unwrap();
        let gw = GpuTernaryWeight::upload(&dev, &w).unwrap();
        let y = r.bitlinear(&xq, &gw).unwrap();
        r.submit();
        let what = format!("[{rows}x{k}] x [{n}x{k}]");
        assert_eq!(xq.values.dims(), &[rows, k]);
        assert_eq!(xq.scales.dims(), &[rows]);
        assert_eq!(y.dims(), &[rows, n]);
        assert_eq!(
            xq.values.to_cpu(&p).unwrap().to_vec_i8(),
            want_q.values.to_vec_i8(),
            "{what} q"
        );
        let bits = |t: &Tensor<'_>| {
            t.to_vec_f32()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            bits(&xq.scales.to_cpu(&p).unwrap()),
            bits(&want_q.scales),
            "{what} scales"
        );
        assert_eq!(bits(&y.to_cpu(&p).unwrap()), bits(&want_y), "{what} y");
    }
}

#[test]
fn the_other_ops_on_gpu_tensors_follow_the_cpu() {
    let Some((g, kernels)) = gpu() else { return };
    let mm = manager(g);
    let dev = GpuDevice::new(&mm, g, GPU);
    let p = Provider::Vec;
    let mut rng = SmallRng::seed_from_u64(3);
    let (rows, n, k) = (2, 24, 40);
    let x = Tensor::from_f32(&p, &[rows, k], &f32s(&mut rng, rows * k)).unwrap();
    let gain = Tensor::from_f32(&p, &[k], &f32s(&mut rng, k)).unwrap();
    let w = Tensor::from_f32(&p, &[n, k], &f32s(&mut rng, n * k)).unwrap();
    let ex = Exec::sequential();
    let want_norm = ops::rmsnorm(&x, &gain, 1e-5, &p).unwrap().to_vec_f32();
    let want_lin = ops::linear(&x, &w, &p, &ex).unwrap().to_vec_f32();
    let want_swiglu = ops::swiglu(&x, &x, &p).unwrap().to_vec_f32();
    let want_emb = ops::embedding(&w, &[5], &p).unwrap().to_vec_f32();
    let mut r = GpuRecorder::new(kernels, &dev);
    let (gx, gg, gw) = (
        dev.upload(&x).unwrap(),
        dev.upload(&gain).unwrap(),
        dev.upload(&w).unwrap(),
    );
    let norm = r.rmsnorm(&gx, &gg, 1e-5).unwrap();
    let lin = r.linear(&gx, &gw).unwrap();
    let sw = r.swiglu(&gx, &gx).unwrap();
    let emb = r.embedding(&gw, 5).unwrap();
    let mut sum = dev.upload(&x).unwrap();
    r.add_in_place(&mut sum, &gx).unwrap();
    r.submit();
    let close = |got: Vec<f32>, want: &[f32], what: &str| {
        for (a, b) in got.iter().zip(want) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{what}: {a} vs {b}"
            );
        }
        assert_eq!(got.len(), want.len(), "{what}");
    };
    close(norm.to_vec_f32().unwrap(), &want_norm, "rmsnorm");
    close(lin.to_vec_f32().unwrap(), &want_lin, "linear");
    close(sw.to_vec_f32().unwrap(), &want_swiglu, "swiglu");
    assert_eq!(emb.dims(), &[1, k]);
    assert_eq!(emb.to_vec_f32().unwrap(), want_emb, "embedding is a copy");
    let doubled: Vec<f32> = x.to_vec_f32().iter().map(|v| v + v).collect();
    assert_eq!(sum.to_vec_f32().unwrap(), doubled, "x += x");
}

#[test]
fn ops_refuse_wrong_dtypes_and_shapes_before_recording() {
    let Some((g, kernels)) = gpu() else { return };
    let mm = manager(g);
    let dev = GpuDevice::new(&mm, g, GPU);
    let p = Provider::Vec;
    let x = dev
        .upload(&Tensor::from_f32(&p, &[2, 8], &[0.5; 16]).unwrap())
        .unwrap();
    let w =
        ops::absmean_quantize(&Tensor::from_f32(&p, &[3, 12], &[0.5; 36]).unwrap(), &p).unwrap();
    let gw = GpuTernaryWeight::upload(&dev, &w).unwrap();
    let mut r = GpuRecorder::new(kernels, &dev);
    let xq = r.absmax_quantize(&x).unwrap();
    let e = r.bitlinear(&xq, &gw).unwrap_err(); // k = 8 against a weight of k = 12
    assert!(
        matches!(
            e,
            Error::ShapeMismatch {
                op: "bitlinear",
                ..
            }
        ),
        "{e}"
    );
    let e = r.absmax_quantize(&xq.values).unwrap_err();
    assert!(
        matches!(
            e,
            Error::DType {
                expected: DType::F32,
                got: DType::I8,
                ..
            }
        ),
        "{e}"
    );
    let e = r.embedding(&x, 2).unwrap_err();
    assert!(
        matches!(
            e,
            Error::OutOfRange {
                index: 2,
                bound: 2,
                ..
            }
        ),
        "{e}"
    );
    let e = dev.tensor(DType::F32, &[0, 3]).unwrap_err();
    assert!(matches!(e, Error::InvalidShape { .. }), "{e}");
    drop(r);
    // A "GPU device" that is the manager's CPU: its blocks are no buffers of the backend.
    let cpu = GpuDevice::new(&mm, g, DeviceId(0));
    let e = cpu.tensor(DType::F32, &[4]).unwrap_err();
    assert!(e.to_string().contains("not a buffer"), "{e}");
}

#[test]
fn dropping_a_gpu_tensor_gives_its_block_back_to_the_device_pool() {
    let Some((g, kernels)) = gpu() else { return };
    let mm = manager(g);
    let dev = GpuDevice::new(&mm, g, GPU);
    let live = |mm: &MemoryManager| {
        let m = mm.metrics();
        let d = m.device(GPU).cloned().unwrap();
        (d.live_allocations, d.live_bytes, d.pending_free_bytes)
    };
    assert_eq!(live(&mm), (0, 0, 0));
    let t = dev.zeros(DType::F32, &[256, 256]).unwrap();
    assert_eq!(live(&mm), (1, 256 * 256 * 4, 0));
    assert_eq!(t.to_vec_f32().unwrap(), vec![0.0; 256 * 256], "zeroed");
    // Recorded and dropped before submitting: the block is no longer live at once...
    let mut r = GpuRecorder::new(kernels, &dev);
    let y = r.swiglu(&t, &t).unwrap();
    drop(t);
    let (allocs, bytes, pending) = live(&mm);
    assert_eq!((allocs, bytes), (1, 256 * 256 * 4), "only y is live");
    assert!(pending >= 256 * 256 * 4, "t waits for the submission");
    // ...and back in the pool once the submission after the drop has finished.
    r.submit();
    g.wait_idle().unwrap();
    drop(y);
    g.submit([]);
    g.wait_idle().unwrap();
    mm.trim();
    assert_eq!(live(&mm), (0, 0, 0), "every block back");
}
