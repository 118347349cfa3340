//! [`GpuKernels`]: the compiled pipelines, and what every launch shares (operand checks,
//! the per-call uniform buffer, the dispatch grid).

use super::elementwise::ELEMENTWISE_ENTRIES;
use super::GpuSlice;
use crate::error::{Error, Result};
use wgpu::util::DeviceExt;

/// Invocations per workgroup of every kernel.
pub const WORKGROUP_SIZE: u32 = 64;

/// One shader: its bind group layout (binding 0 the uniform parameters, bindings 1.. the
/// storage operands) and a pipeline per entry point.
#[derive(Debug)]
pub(super) struct Kernel {
    layout: wgpu::BindGroupLayout,
    pipelines: Vec<wgpu::ComputePipeline>,
}

/// The compute kernels, compiled once for one device.
///
/// Build it with [`GpuKernels::new`]; every kernel then records into a caller's
/// [`wgpu::CommandEncoder`] and never submits. See the [module docs](super) for the
/// kernels, their bindings and their limits.
#[derive(Debug)]
pub struct GpuKernels {
    pub(super) device: wgpu::Device,
    pub(super) quant: Kernel,
    pub(super) bitlinear: Kernel,
    pub(super) norm: Kernel,
    pub(super) linear: Kernel,
    pub(super) softmax: Kernel,
    pub(super) attention: Kernel,
    pub(super) elementwise: Kernel,
    pub(super) swiglu: Kernel,
    align: u64,
    max_binding: u64,
    max_groups: u32,
}

/// Entry points of `quant.wgsl`, in dispatch order.
pub(super) const QUANT_ENTRIES: [&str; 3] = ["row_scale", "quantize", "finish_scale"];

impl GpuKernels {
    /// Compiles every shader and pipeline for `device`. Fails (never panics) if the device
    /// refuses one of them.
    pub fn new(device: &wgpu::Device) -> Result<Self> {
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let limits = device.limits();
        let k = |label, source, storage, entries: &[&str]| {
            build(device, label, source, storage, entries)
        };
        let main = &["main"];
        let kernels = GpuKernels {
            quant: k("quant", include_str!("quant.wgsl"), 3, &QUANT_ENTRIES),
            bitlinear: k("bitlinear", include_str!("bitlinear.wgsl"), 4, main),
            norm: k("rmsnorm", include_str!("rmsnorm.wgsl"), 3, main),
            linear: k("linear", include_str!("linear.wgsl"), 3, main),
            softmax: k("softmax", include_str!("softmax.wgsl"), 1, main),
            attention: k("attention", include_str!("attention.wgsl"), 5, main),
            elementwise: k(
                "elementwise",
                include_str!("elementwise.wgsl"),
                2,
                &ELEMENTWISE_ENTRIES,
            ),
            swiglu: k("swiglu", include_str!("swiglu.wgsl"), 3, main),
            device: device.clone(),
            align: u64::from(limits.min_storage_buffer_offset_alignment),
            max_binding: limits.max_storage_buffer_binding_size,
            max_groups: limits.max_compute_workgroups_per_dimension,
        };
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu {
                op: "GpuKernels::new",
                reason: e.to_string(),
            });
        }
        Ok(kernels)
    }

    /// The alignment every [`GpuSlice::offset`] must have: the device's
    /// `min_storage_buffer_offset_alignment`.
    pub fn offset_alignment(&self) -> u64 {
        self.align
    }

    /// Checks one operand: aligned, whole words, inside its buffer, a storage buffer, at
    /// most the device's binding size and at least `need` bytes.
    pub(super) fn check(
        &self,
        op: &'static str,
        name: &str,
        s: &GpuSlice<'_>,
        need: u64,
    ) -> Result<()> {
        let fail = |why: String| Error::Gpu {
            op,
            reason: format!("{name} (offset {}, size {}): {why}", s.offset, s.size),
        };
        if !s.offset.is_multiple_of(self.align) {
            return Err(fail(format!("offset not a multiple of {}", self.align)));
        }
        if !s.size.is_multiple_of(4) || s.size == 0 {
            return Err(fail("size not a positive multiple of 4".into()));
        }
        if s.offset
            .checked_add(s.size)
            .is_none_or(|end| end > s.buffer.size())
        {
            let len = s.buffer.size();
            return Err(fail(format!("past the end of its buffer of {len} B")));
        }
        if !s.buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
            return Err(fail("buffer lacks BufferUsages::STORAGE".into()));
        }
        if s.size > self.max_binding {
            let max = self.max_binding;
            return Err(fail(format!("over the device's binding size of {max} B")));
        }
        if s.size < need {
            return Err(fail(format!("{need} B needed")));
        }
        Ok(())
    }

    /// The workgroup grid for `groups` workgroups: `(x, y)` with `x * y >= groups`, each at
    /// most the device's `max_compute_workgroups_per_dimension`. Shaders linearize the id.
    pub(super) fn grid(&self, op: &'static str, groups: u64) -> Result<(u32, u32)> {
        let max = u64::from(self.max_groups);
        let x = groups.min(max);
        let y = groups.div_ceil(x.max(1));
        if y > max {
            return Err(Error::Gpu {
                op,
                reason: format!("{groups} workgroups exceed the dispatch limit of {max}²"),
            });
        }
        Ok((x as u32, y as u32))
    }

    /// Records one compute pass: binds `params` (a per-call uniform buffer, binding 0) and
    /// `slices` (bindings 1..), then runs `(entry point, grid)` dispatches in order. wgpu
    /// places a barrier between dispatches that write and read the same buffer.
    pub(super) fn launch(
        &self,
        enc: &mut wgpu::CommandEncoder,
        kernel: &Kernel,
        label: &str,
        params: &[u32],
        slices: &[GpuSlice<'_>],
        dispatches: &[(usize, (u32, u32))],
    ) {
        let uniform = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        entries.extend(slices.iter().zip(1..).map(|(s, i)| wgpu::BindGroupEntry {
            binding: i,
            resource: s.binding(),
        }));
        let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &kernel.layout,
            entries: &entries,
        });
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(label),
            timestamp_writes: None,
        });
        pass.set_bind_group(0, &group, &[]);
        for &(entry, (x, y)) in dispatches {
            pass.set_pipeline(&kernel.pipelines[entry]);
            pass.dispatch_workgroups(x, y, 1);
        }
    }
}

/// Fails if `out` overlaps any of `inputs` (same buffer, intersecting ranges).
pub(super) fn check_disjoint(
    op: &'static str,
    out: (&str, &GpuSlice<'_>),
    inputs: &[(&str, &GpuSlice<'_>)],
) -> Result<()> {
    let (oname, o) = out;
    for &(name, s) in inputs {
        if s.buffer == o.buffer && s.offset < o.offset + o.size && o.offset < s.offset + s.size {
            return Err(Error::Gpu {
                op,
                reason: format!("output {oname} overlaps operand {name}"),
            });
        }
    }
    Ok(())
}

/// Fails unless `count` (an element count or flat index bound) fits the shaders' `u32`
/// index arithmetic with room for a word of slack.
pub(super) fn check_count(op: &'static str, what: &str, count: u64) -> Result<()> {
    if count >= 1 << 31 {
        return Err(Error::Gpu {
            op,
            reason: format!("{what} = {count} elements, over the limit of 2^31"),
        });
    }
    Ok(())
}

/// A kernel of `storage` storage bindings after the uniform, one pipeline per entry point.
fn build(
    device: &wgpu::Device,
    label: &str,
    source: &str,
    storage: u32,
    entries: &[&str],
) -> Kernel {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let buffer = |binding, ty| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    let mut layout_entries = vec![buffer(0, wgpu::BufferBindingType::Uniform)];
    for b in 1..=storage {
        let ty = wgpu::BufferBindingType::Storage { read_only: false };
        layout_entries.push(buffer(b, ty));
    }
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(label),
        entries: &layout_entries,
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(label),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipelines = entries
        .iter()
        .map(|&entry| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        })
        .collect();
    Kernel { layout, pipelines }
}
