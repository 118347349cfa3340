//! `bitnet-mem bench --device wgpu`: the GPU streams through our pool, create-drop and the
//! plain cache ([`crate::bench::gpu`]), one table and a verdict line per workload.

use super::bench::Args;
use super::CmdResult;
use crate::bench::engine::{Spec, Work};
use crate::bench::gpu::{
    fence_floor, measure, table, verdict, verdict_line, CreateDrop, FreeList, GpuVerdict, Ours,
};
use crate::bench::report::Report;
use crate::bench::workload::WorkloadName;
use bitnet_memory::device::wgpu::{WgpuBackend, WgpuOptions};

/// The workloads the GPU bench runs (the others are host-side patterns).
pub const GPU_WORKLOADS: [WorkloadName; 2] =
    [WorkloadName::TensorMix, WorkloadName::BitnetInference];

/// Runs the GPU benchmark.
pub fn run(args: &Args) -> CmdResult {
    let mut workloads: Vec<WorkloadName> = if args.workloads.is_empty() {
        GPU_WORKLOADS.to_vec()
    } else {
        args.workloads.clone()
    };
    workloads.sort();
    workloads.dedup();
    if let Some(w) = workloads.iter().find(|w| !GPU_WORKLOADS.contains(w)) {
        return Err(format!(
            "--device wgpu runs tensor-mix and bitnet-inference, not {}",
            w.name()
        )
        .into());
    }
    let gpu = WgpuBackend::new(&WgpuOptions::from_env())?;
    let info = gpu.adapter_info();
    let method = args.method();
    let mut report = Report::default();
    let mut rows = Vec::new();
    let mut floors = Vec::new();
    for &workload in &workloads {
        let spec = Spec {
            workload,
            threads: 1,
            seed: args.seed,
            scale: args.scale,
            quick: args.quick,
            trace: None,
            preset: args.config,
        };
        let Work::Streams(streams) = Work::build(&spec)? else {
            unreachable!("GPU workloads are streams");
        };
        let stream = &streams[0];
        let floor = fence_floor(stream, args.submit_every);
        floors.push(floor as f64 / stream.peak_live.max(1) as f64);
        let (mm, counts) = Ours::manager(&gpu)?;
        let mut ours = Ours::new(&mm, gpu.clone(), counts, stream.slots);
        let (device, queue) = (gpu.device().clone(), gpu.queue().clone());
        let mut free_list = FreeList::new(device.clone(), queue.clone(), stream.slots);
        let mut create_drop = CreateDrop::new(device, queue, stream.slots);
        rows.extend(measure(
            workload.name(),
            stream,
            &mut [&mut ours, &mut free_list, &mut create_drop],
            method.warmup,
            method.repeats,
            args.submit_every,
        )?);
    }
    println!(
        "bitnet-mem bench --device wgpu{}: {} ({:?}, {}), {} repeats after {} warm-up, seed {}, scale {}, submit every {} ops",
        if args.quick { " --quick" } else { "" },
        info.name,
        info.backend,
        info.driver,
        method.repeats,
        method.warmup,
        args.seed,
        args.scale,
        args.submit_every,
    );
    print!("{}", table(&rows));
    println!(
        "ns: wall time per alloc+free pair; peak device: the most device memory held in a timed run (buffers alive, cached included); dev/live: peak device / peak live."
    );
    let verdicts: Vec<_> = workloads
        .iter()
        .zip(&floors)
        .map(|(w, &f)| GpuVerdict {
            fence_floor_over_live: Some(f),
            ..verdict(w.name(), &rows)
        })
        .collect();
    for v in &verdicts {
        println!("{}", verdict_line(v));
    }
    report.add_section("gpu", &rows)?;
    report.add_section("gpu_verdicts", &verdicts)?;
    if let Some(path) = &args.json {
        report.write_json(path)?;
        println!("JSON written to {}", path.display());
    }
    Ok(())
}
