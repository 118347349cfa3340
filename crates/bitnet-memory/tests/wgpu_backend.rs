//! The wgpu backend under the manager, on a real adapter (lavapipe in CI): the fence rule
//! with a real kernel, a shadow model of random blocks, limits and budgets, a CPU + GPU
//! manager, offset alignment.
//!
//! Without an adapter each test prints why and returns, unless `BITNET_REQUIRE_GPU=1`
//! (CI sets it), when it fails with the reason.
#![cfg(feature = "wgpu")]

use bitnet_memory::device::wgpu::{WgpuBackend, WgpuOptions};
use bitnet_memory::device::{Chunk, DeviceError, DeviceLimits, DeviceRange};
use bitnet_memory::{
    Allocation, CpuBackend, DeviceBackend, DeviceId, LeakCheck, LeakConfig, MemoryConfig,
    MemoryError, MemoryManager, TrackingConfig,
};
use rand::{rngs::SmallRng, Rng, SeedableRng};
use std::alloc::Layout;

const GPU: DeviceId = DeviceId(1);

fn gpu() -> Option<WgpuBackend> {
    match WgpuBackend::new(&WgpuOptions::default()) {
        Ok(g) => Some(g),
        Err(e) if std::env::var("BITNET_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!("BITNET_REQUIRE_GPU=1 but no GPU: {e}")
        }
        Err(e) => {
            eprintln!("skipped: no GPU adapter ({e}); BITNET_REQUIRE_GPU=1 makes this fail");
            None
        }
    }
}

/// The CPU as device 0 and `dev` as device 1 with `budget`; chunks from 4 MiB.
fn manager(dev: impl DeviceBackend, budget: usize) -> MemoryManager {
    let config = MemoryConfig::default()
        .min_chunk(4 << 20)
        .tracking(TrackingConfig::off())
        .leak(LeakConfig::off());
    MemoryManager::builder(config)
        .device(CpuBackend::new(), None)
        .device(dev, Some(budget))
        .build()
        .unwrap()
}

fn on_gpu(mm: &MemoryManager, size: usize) -> Allocation<'_> {
    mm.try_allocate_on(GPU, Layout::from_size_align(size, 4).unwrap())
        .unwrap()
}

/// Bytes that differ for every seed and position.
fn pattern(seed: u32, n: usize) -> Vec<u8> {
    (0..n as u32)
        .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503)) >> 11) as u8)
        .collect()
}

/// A kernel copying one block into another, 4 bytes per invocation.
struct CopyKernel {
    pipeline: wgpu::ComputePipeline,
}

// Both bindings `read_write`: wgpu tracks usage per buffer, not per range, and the two
// blocks may share a chunk's buffer (read-only and read-write in one dispatch conflict).
const COPY_WGSL: &str = "
@group(0) @binding(0) var<storage, read_write> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < arrayLength(&dst)) {
        dst[id.x] = src[id.x];
    }
}
";

impl CopyKernel {
    fn new(g: &WgpuBackend) -> Self {
        let module = g
            .device()
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("copy"),
                source: wgpu::ShaderSource::Wgsl(COPY_WGSL.into()),
            });
        let pipeline = g
            .device()
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("copy"),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        Self { pipeline }
    }

    /// Records `dst = src` into a command buffer, not submitted.
    fn record(
        &self,
        g: &WgpuBackend,
        src: &Allocation<'_>,
        dst: &Allocation<'_>,
    ) -> wgpu::CommandBuffer {
        let (s, d) = (g.binding(src).unwrap(), g.binding(dst).unwrap());
        let group = g.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("copy"),
            layout: &self.pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: s.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: d.as_entire_binding(),
                },
            ],
        });
        let mut encoder = g
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups((d.size as u32 / 4).div_ceil(64), 1, 1);
        }
        encoder.finish()
    }
}

/// The scenario the fence exists for: a kernel reading A is recorded, A is freed, B of
/// the same size is allocated and uploaded, then the kernel is submitted. Returns A's and
/// B's ranges and what the kernel wrote.
fn record_free_reuse_submit(
    g: &WgpuBackend,
    mm: &MemoryManager,
    n: usize,
) -> (DeviceRange, DeviceRange, Vec<u8>) {
    let kernel = CopyKernel::new(g);
    let a = on_gpu(mm, n);
    let out = on_gpu(mm, n);
    g.upload(&a, &pattern(1, n)).unwrap();
    let cmd = kernel.record(g, &a, &out);
    let ra = a.device_range().unwrap();
    drop(a);
    let b = on_gpu(mm, n);
    let rb = b.device_range().unwrap();
    g.upload(&b, &pattern(2, n)).unwrap(); // staged: runs before `cmd`
    g.submit([cmd]);
    let got = g.download(&out).unwrap();
    assert_eq!(
        g.download(&b).unwrap(),
        pattern(2, n),
        "B holds its own data"
    );
    (ra, rb, got)
}

#[test]
fn a_freed_block_is_not_reused_while_a_recorded_kernel_may_read_it() {
    let Some(g) = gpu() else { return };
    let mm = manager(g.clone(), 256 << 20);
    // A size-class block (from a slab) and a large-pool block.
    for n in [4096, 3 << 20] {
        let (ra, rb, got) = record_free_reuse_submit(&g, &mm, n);
        assert_ne!(
            rb, ra,
            "{n}: B was placed on A's range while the kernel was pending"
        );
        assert!(
            got == pattern(1, n),
            "{n}: the kernel did not read A's data"
        );
        // The submission after the free has finished (the download waited for it): a
        // block of the same size now gets A's range back.
        let c = on_gpu(&mm, n);
        assert_eq!(
            c.device_range().unwrap(),
            ra,
            "{n}: A's range is free again"
        );
        // B and the output went when the scenario ended: pending until the next
        // submission finishes.
        assert!(mm.metrics().devices[1].pending_free_bytes >= 2 * n);
        g.submit([]);
        g.wait_idle().unwrap();
        mm.trim();
        assert_eq!(mm.metrics().devices[1].pending_free_bytes, 0);
    }
    mm.check_invariants();
}

#[test]
fn a_request_waits_for_the_kernels_submission_instead_of_growing() {
    // A kernel reads A, A is freed, the kernel is submitted: the submission after A's free
    // is made. A request that would map a new buffer waits for it (a bounded device poll)
    // and reclaims A's chunk first, so the device never holds both; the kernel still read
    // A's data.
    let Some(g) = gpu() else { return };
    let mm = manager(g.clone(), 256 << 20);
    let kernel = CopyKernel::new(&g);
    let n = 3 << 20; // one block per 4 MiB chunk: a second one needs a new buffer
    {
        // A first run, so that the wait below is for the copy, not for the driver
        // compiling the shader (lavapipe compiles at the first dispatch).
        let (x, y) = (on_gpu(&mm, 4096), on_gpu(&mm, 4096));
        g.submit([kernel.record(&g, &x, &y)]);
        g.wait_idle().unwrap();
    }
    let a = on_gpu(&mm, n);
    let out = on_gpu(&mm, n);
    g.upload(&a, &pattern(1, n)).unwrap();
    let cmd = kernel.record(&g, &a, &out);
    drop(a);
    g.submit([cmd]);
    let before = mm.metrics().devices[1].clone();
    assert!(before.pending_free_bytes >= n, "A waits for the kernel");
    let b = on_gpu(&mm, n);
    let after = mm.metrics().devices[1].clone();
    assert_eq!(after.pending_free_bytes, 0, "A was reclaimed");
    assert!(
        after.peak_reserved_bytes <= before.peak_reserved_bytes,
        "the pool grew past A: {} -> {}",
        before.peak_reserved_bytes,
        after.peak_reserved_bytes
    );
    assert_eq!(
        after.mapped_bytes, before.mapped_bytes,
        "A's buffer went, B's came"
    );
    assert!(
        g.download(&out).unwrap() == pattern(1, n),
        "the kernel read A"
    );
    drop((b, out));
    mm.check_invariants();
}

/// The wgpu backend without its submission count: the pool cannot fence it.
struct Unfenced(WgpuBackend);

impl DeviceBackend for Unfenced {
    fn name(&self) -> &str {
        "wgpu-unfenced"
    }
    fn host_visible(&self) -> bool {
        false
    }
    fn allocate_chunk(&self, size: usize, align: usize) -> Result<Chunk, DeviceError> {
        self.0.allocate_chunk(size, align)
    }
    fn release_chunk(&self, chunk: Chunk) {
        self.0.release_chunk(chunk)
    }
    fn capacity(&self) -> Option<usize> {
        None
    }
    fn available(&self) -> Option<usize> {
        None
    }
    fn limits(&self) -> DeviceLimits {
        DeviceBackend::limits(&self.0)
    }
}

#[test]
fn without_the_fence_the_kernel_reads_the_new_owners_upload() {
    // What the fence prevents, shown on the same driver: B lands on A's range and its
    // staged upload runs before the recorded kernel, which then copies B's data.
    let Some(g) = gpu() else { return };
    let mm = manager(Unfenced(g.clone()), 256 << 20);
    for n in [4096, 3 << 20] {
        let (ra, rb, got) = record_free_reuse_submit(&g, &mm, n);
        assert_eq!(rb, ra, "{n}: unfenced, B reuses A's range at once");
        assert!(
            got == pattern(2, n),
            "{n}: the kernel read B's upload, not A's data"
        );
    }
}

#[test]
fn random_blocks_keep_their_bytes_and_never_overlap() {
    let Some(g) = gpu() else { return };
    let mm = manager(g.clone(), 512 << 20);
    let check = LeakCheck::start(&mm);
    let align = DeviceBackend::limits(&g).min_align;
    let mut rng = SmallRng::seed_from_u64(0x6770_0001);
    let mut live: Vec<(Allocation<'_>, DeviceRange, u32)> = Vec::new();
    let mut seed = 10;
    let verify = |a: &Allocation<'_>, s: u32| {
        let got = g.download(a).unwrap();
        assert!(
            got == pattern(s, a.len()),
            "block {s} of {} B lost its bytes",
            a.len()
        );
    };
    for step in 0..120 {
        let grow = live.len() < 3 || (live.len() < 12 && rng.gen_bool(0.55));
        if grow {
            // Log-uniform from 4 B to 8 MiB.
            let size = 2f64.powf(rng.gen_range(2.0..23.0)) as usize;
            let a = on_gpu(&mm, size);
            let r = a.device_range().unwrap();
            assert_eq!(r.offset % align, 0, "{r:?}");
            for (_, o, _) in &live {
                let apart = o.chunk != r.chunk
                    || o.offset + o.len <= r.offset
                    || r.offset + r.len <= o.offset;
                assert!(apart, "step {step}: {r:?} overlaps {o:?}");
            }
            seed += 1;
            g.upload(&a, &pattern(seed, size)).unwrap();
            live.push((a, r, seed));
        } else {
            let (a, _, s) = live.swap_remove(rng.gen_range(0..live.len()));
            verify(&a, s);
            drop(a);
        }
        if step % 15 == 14 {
            // Every live block still holds its own bytes, whatever came and went.
            for (a, _, s) in &live {
                verify(a, *s);
            }
        }
    }
    for (a, _, s) in live.drain(..) {
        verify(&a, s);
    }
    mm.check_invariants();
    check.assert_no_leaks();
    assert_eq!(mm.metrics().devices[1].live_bytes, 0);
}

#[test]
fn a_full_device_is_answered_by_trim_and_retry_when_slabs_hold_the_buffers() {
    // Small blocks live in size-class slabs carved from shared buffers; freed, they go
    // back to their class and the slabs keep the buffers until a trim. A big request that
    // would pass the budget then runs trim-and-retry, which gives the buffers back.
    let Some(g) = gpu() else { return };
    let mm = manager(g.clone(), 48 << 20);
    let small: Vec<_> = (0..900).map(|_| on_gpu(&mm, 32 << 10)).collect();
    drop(small);
    g.submit([]);
    g.wait_idle().unwrap();
    let held = g.buffer_bytes();
    assert!(
        held >= 28 << 20,
        "the slabs still hold their buffers: {held}"
    );
    let runs = mm.metrics().cleanup.runs;
    let b = on_gpu(&mm, 40 << 20);
    assert_eq!(
        mm.metrics().cleanup.runs,
        runs + 1,
        "one trim-and-retry run"
    );
    assert!(g.buffer_bytes() <= 48 << 20);
    drop(b);
}

#[test]
fn limits_budget_and_trim_and_retry_each_say_their_own_thing() {
    let Some(g) = gpu() else { return };
    let mm = manager(g.clone(), 32 << 20);
    let max_binding = DeviceBackend::limits(&g).max_block;
    // Above the largest binding: never fits, no trim, no buffer made.
    let e = mm
        .try_allocate_on(GPU, Layout::from_size_align(max_binding + 4, 4).unwrap())
        .unwrap_err();
    let MemoryError::TooLarge {
        limit, limit_name, ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(
        (*limit, *limit_name),
        (max_binding, "max_storage_buffer_binding_size")
    );
    assert!(
        e.to_string().contains("max_storage_buffer_binding_size"),
        "{e}"
    );
    assert!(!e.is_retryable());
    assert_eq!(mm.metrics().cleanup.runs, 0);
    assert_eq!(g.buffer_count(), 0);
    // Within the device's limits but over the budget: the budget error, retryable.
    let over = (48 << 20).min(max_binding);
    let e = mm
        .try_allocate_on(GPU, Layout::from_size_align(over, 4).unwrap())
        .unwrap_err();
    assert!(matches!(e, MemoryError::BudgetExceeded { .. }), "{e}");
    assert!(e.is_retryable());
    // A freed 20 MiB block holds its buffer until the device is done with it: the pool
    // never submits by itself, so 24 MiB more cannot fit yet.
    drop(on_gpu(&mm, 20 << 20));
    assert!(mm.metrics().devices[1].pending_free_bytes >= 20 << 20);
    let e = mm
        .try_allocate_on(GPU, Layout::from_size_align(24 << 20, 4).unwrap())
        .unwrap_err();
    assert!(matches!(e, MemoryError::BudgetExceeded { .. }), "{e}");
    // The user's next submission finishes: the block comes back at the next request,
    // and its buffer (a chunk of its own: 20 MiB is above the dedicated threshold) is
    // destroyed at once to make room, with no trim-and-retry run.
    g.submit([]);
    g.wait_idle().unwrap();
    let runs = mm.metrics().cleanup.runs;
    let b = on_gpu(&mm, 24 << 20);
    assert_eq!(mm.metrics().cleanup.runs, runs, "no trim needed");
    assert_eq!(g.buffer_count(), 1, "the old buffer was destroyed");
    assert!(g.buffer_bytes() <= 32 << 20);
    drop(b);
}

#[test]
fn cpu_and_gpu_devices_each_have_their_own_books() {
    let Some(g) = gpu() else { return };
    let mm = manager(g.clone(), 64 << 20);
    let check = LeakCheck::start(&mm);
    let cpu: Vec<_> = (0..3)
        .map(|_| {
            mm.try_allocate(Layout::from_size_align(1000, 8).unwrap())
                .unwrap()
        })
        .collect();
    let gpu_blocks: Vec<_> = [100, 5000, 2 << 20]
        .iter()
        .map(|&s| on_gpu(&mm, s))
        .collect();
    let m = mm.metrics();
    assert_eq!(m.devices.len(), 2);
    assert_eq!(
        (m.devices[0].backend.as_str(), m.devices[1].backend.as_str()),
        ("cpu", "wgpu")
    );
    assert_eq!(m.devices[0].live_bytes, 3000);
    assert_eq!(m.devices[1].live_bytes, 100 + 5000 + (2 << 20));
    assert_eq!(m.devices[1].live_allocations, 3);
    assert_eq!(m.devices[1].budget, Some(64 << 20));
    assert!(m.devices[1].mapped_bytes > 0 && m.devices[1].mapped_bytes <= 64 << 20);
    assert_eq!(m.pressure.len(), 2);
    assert!(m.to_prometheus().contains("device=\"1\",backend=\"wgpu\""));
    let s = mm.snapshot();
    assert_eq!(s.devices.len(), 2);
    assert_eq!(s.devices[1].backend, "wgpu");
    assert_eq!(s.devices[1].metrics.live_allocations, 3);
    // Leaks are told per device.
    let report = check.leaks();
    assert_eq!(report.allocations, 6);
    let on = |d: DeviceId| -> usize {
        report
            .untracked
            .iter()
            .filter(|c| c.device == d)
            .map(|c| c.count)
            .sum()
    };
    assert_eq!((on(DeviceId::CPU), on(GPU)), (3, 3), "{report:?}");
    drop(gpu_blocks);
    // Freed, but pending until the device finishes work submitted after the frees: not
    // live, not a leak, not yet given back.
    check.assert_no_leaks_on_cpu_pending_gpu(&cpu);
    g.submit([]);
    g.wait_idle().unwrap();
    let held = g.buffer_bytes();
    assert!(held > 0);
    let r = mm.trim();
    assert!(r.bytes_released >= held, "{r:?} vs {held} B of buffers");
    assert_eq!(g.buffer_count(), 0, "every unused GPU buffer was destroyed");
    assert_eq!(mm.metrics().devices[1].mapped_bytes, 0);
    drop(cpu);
    check.assert_no_leaks();
}

/// The leak check's view while the CPU blocks are live and the GPU's are pending.
trait PendingView {
    fn assert_no_leaks_on_cpu_pending_gpu(&self, cpu: &[Allocation<'_>]);
}

impl PendingView for LeakCheck<'_> {
    fn assert_no_leaks_on_cpu_pending_gpu(&self, cpu: &[Allocation<'_>]) {
        let r = self.leaks();
        assert_eq!(
            r.allocations,
            cpu.len(),
            "pending GPU blocks are no leaks: {r:?}"
        );
        assert!(
            r.untracked.iter().all(|c| c.device == DeviceId::CPU),
            "{r:?}"
        );
    }
}

#[test]
fn every_block_offset_is_a_multiple_of_the_storage_offset_alignment() {
    let Some(g) = gpu() else { return };
    let align = g.limits().min_storage_buffer_offset_alignment as usize;
    let mm = manager(g.clone(), 256 << 20);
    let sizes = (1..=80)
        .chain([
            100,
            255,
            256,
            257,
            1000,
            4095,
            4097,
            65_535,
            65_537,
            1 << 20,
            (1 << 20) + 1,
        ])
        .chain([3_000_001, 8 << 20]);
    let blocks: Vec<_> = sizes.map(|s| on_gpu(&mm, s)).collect();
    for a in &blocks {
        let r = a.device_range().unwrap();
        assert_eq!(
            r.offset % align,
            0,
            "{} B at {r:?} (alignment {align})",
            a.len()
        );
        assert_eq!(g.binding(a).unwrap().offset, r.offset as u64);
    }
}

#[test]
fn transfers_refuse_what_the_block_cannot_give() {
    let Some(g) = gpu() else { return };
    let mm = manager(g.clone(), 64 << 20);
    // Lengths that are not multiples of 4 are padded inside the block.
    for n in [1, 5, 33, 4099] {
        let a = on_gpu(&mm, n);
        g.upload(&a, &pattern(n as u32, n)).unwrap();
        assert_eq!(g.download(&a).unwrap(), pattern(n as u32, n), "{n}");
        assert_eq!(
            g.binding(&a).unwrap().binding_size(),
            n.next_multiple_of(4) as u64
        );
    }
    let a = on_gpu(&mm, 64);
    let e = g.upload(&a, &[0; 65]).unwrap_err();
    assert!(matches!(e, MemoryError::InvalidDeviceAccess { .. }), "{e}");
    // A CPU block is not this backend's.
    let cpu = mm
        .try_allocate(Layout::from_size_align(64, 8).unwrap())
        .unwrap();
    assert!(cpu.device_range().is_some());
    let e = g.binding(&cpu).unwrap_err();
    assert!(e.to_string().contains("not a buffer of this"), "{e}");
    assert!(g.download(&cpu).is_err() && g.upload(&cpu, &[1; 4]).is_err());
    // A zero-sized block has no memory: nothing to read, no binding.
    let z = on_gpu(&mm, 0);
    assert_eq!(g.download(&z).unwrap(), Vec::<u8>::new());
    g.upload(&z, &[]).unwrap();
    assert!(g.binding(&z).is_err());
}

#[test]
fn a_lost_device_fails_requests_at_once_and_for_good() {
    let Some(g) = gpu() else { return };
    let mm = manager(g.clone(), 64 << 20);
    let keep = on_gpu(&mm, 1 << 20);
    g.device().destroy();
    let _ = g.device().poll(wgpu::PollType::Poll);
    let e = mm
        .try_allocate_on(GPU, Layout::from_size_align(32 << 20, 4).unwrap())
        .unwrap_err();
    assert!(matches!(e, MemoryError::DeviceUnavailable { .. }), "{e}");
    assert!(e.to_string().contains("lost"), "{e}");
    assert!(!e.is_retryable());
    assert_eq!(
        mm.metrics().cleanup.runs,
        0,
        "no trim-and-retry for a lost device"
    );
    drop(keep);
}

#[test]
fn the_devices_buffers_fall_back_to_the_small_blocks_once_big_ones_are_freed() {
    let Some(g) = gpu() else { return };
    // The default chunk settings of a device that cannot decommit.
    let config = MemoryConfig::default()
        .tracking(TrackingConfig::off())
        .leak(LeakConfig::off());
    let mm = MemoryManager::builder(config)
        .device(CpuBackend::new(), None)
        .device(g.clone(), None)
        .build()
        .unwrap();
    let small: Vec<_> = (0..8).map(|i| on_gpu(&mm, 4096 + i * 1024)).collect();
    let small_level = g.buffer_bytes();
    assert!(small_level <= 4 << 20, "{small_level}");
    let big: Vec<_> = [5 << 20, 24 << 20, 9 << 20]
        .into_iter()
        .map(|s| on_gpu(&mm, s))
        .collect();
    assert!(g.buffer_bytes() >= small_level + (38 << 20));
    drop(big);
    // Pending until the next submission after the free has finished.
    assert!(g.buffer_bytes() >= small_level + (38 << 20));
    g.submit([]);
    g.wait_idle().unwrap();
    drop(on_gpu(&mm, 64)); // the next request reclaims them
    assert_eq!(
        g.buffer_bytes(),
        small_level,
        "big blocks' buffers went back"
    );
    drop(small);
}

#[test]
fn a_zeroed_allocation_on_the_gpu_reads_zeros_even_on_a_reused_range() {
    let Some(g) = gpu() else { return };
    let mm = manager(g.clone(), 64 << 20);
    let size = 64 << 10;
    // A live block keeps the shared buffer (an emptied one would go back to the device).
    let _pin = on_gpu(&mm, size);
    let dirty: Vec<_> = (0..8).map(|_| on_gpu(&mm, size)).collect();
    for a in &dirty {
        g.upload(a, &vec![0xAB; size]).unwrap();
    }
    let old: Vec<DeviceRange> = dirty.iter().map(|a| a.device_range().unwrap()).collect();
    drop(dirty);
    // Let the fence pass so that the ranges can be handed out again.
    g.submit([]);
    g.wait_idle().unwrap();
    let zeroed: Vec<_> = (0..8)
        .map(|_| {
            mm.try_allocate_zeroed_on(GPU, Layout::from_size_align(size, 4).unwrap())
                .unwrap()
        })
        .collect();
    let reused = zeroed
        .iter()
        .filter(|z| old.contains(&z.device_range().unwrap()))
        .count();
    assert!(reused > 0, "some old owner's range came back");
    for z in &zeroed {
        assert!(
            g.download(z).unwrap().iter().all(|&b| b == 0),
            "zeros, not 0xAB"
        );
    }
}
