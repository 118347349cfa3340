//! [`GpuTensor`]: a tensor whose bytes are a block of a [`MemoryManager`]'s GPU device, and
//! [`GpuDevice`], the device it is made on.
//!
//! A GPU tensor is what a CPU [`Tensor`] is, on the GPU: an element type, a shape and one
//! pooled [`Allocation`], here of a wgpu device, with the block's buffer range kept for
//! kernels. It is always contiguous and row-major (the bytes of the CPU tensor of the same
//! shape), owns its block alone and gives it back when dropped; on a device that counts
//! submissions the block then waits for the submission after the drop to finish before
//! the pool hands it out again (the fence of `bitnet_memory::device::wgpu`), so a tensor
//! may be dropped as soon as the kernels that use it are *recorded*.
//!
//! ```
//! use bitnet_memory::device::wgpu::{WgpuBackend, WgpuOptions};
//! use bitnet_memory::{CpuBackend, DeviceId, MemoryConfig, MemoryManager};
//! use bitnet_tensor::gpu::GpuDevice;
//! use bitnet_tensor::{Provider, Tensor};
//!
//! let Ok(gpu) = WgpuBackend::new(&WgpuOptions::default()) else { return Ok(()) }; // no GPU
//! let mm = MemoryManager::builder(MemoryConfig::default())
//!     .device(CpuBackend::new(), None)
//!     .device(gpu.clone(), None)
//!     .build()?;
//! let dev = GpuDevice::new(&mm, &gpu, DeviceId(1));
//! let p = Provider::Manager(&mm);
//! let x = Tensor::from_f32(&p, &[2, 2], &[1.0, -2.0, 3.5, 0.25])?;
//! let on_gpu = dev.upload(&x)?; // a block of device 1, staged upload
//! assert_eq!(on_gpu.dims(), &[2, 2]);
//! let back = on_gpu.to_cpu(&p)?; // a download: waits for the GPU
//! assert_eq!(back.to_vec_f32(), x.to_vec_f32());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::GpuSlice;
use crate::dtype::{DType, Shape};
use crate::error::{Error, Result};
use crate::storage::Provider;
use crate::tensor::Tensor;
use bitnet_memory::device::wgpu::{GpuRange, WgpuBackend};
use bitnet_memory::{Allocation, DeviceId, MemoryManager};
use std::alloc::Layout;

/// Alignment asked of the pool for a GPU tensor's block: a word (the pool raises it to the
/// device's `min_storage_buffer_offset_alignment`).
const GPU_ALIGN: usize = 4;

/// A GPU device of a [`MemoryManager`]: where [`GpuTensor`]s are made, and the backend
/// they are uploaded, downloaded and submitted through. Cheap to clone.
#[derive(Clone)]
pub struct GpuDevice<'m> {
    mm: &'m MemoryManager,
    gpu: WgpuBackend,
    id: DeviceId,
}

impl std::fmt::Debug for GpuDevice<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuDevice")
            .field("id", &self.id)
            .field("gpu", &self.gpu)
            .finish()
    }
}

impl<'m> GpuDevice<'m> {
    /// Device `id` of `mm`, which must be `gpu` (a tensor made on another device fails
    /// with [`Error::Memory`], naming the chunk that is not one of `gpu`'s buffers).
    pub fn new(mm: &'m MemoryManager, gpu: &WgpuBackend, id: DeviceId) -> Self {
        GpuDevice {
            mm,
            gpu: gpu.clone(),
            id,
        }
    }

    /// The manager.
    pub fn manager(&self) -> &'m MemoryManager {
        self.mm
    }

    /// The wgpu backend.
    pub fn backend(&self) -> &WgpuBackend {
        &self.gpu
    }

    /// The manager's id of the device.
    pub fn id(&self) -> DeviceId {
        self.id
    }

    /// A tensor whose contents are unspecified, for outputs a kernel overwrites whole.
    pub fn tensor(&self, dtype: DType, dims: &[usize]) -> Result<GpuTensor<'m>> {
        let shape = checked_shape(dtype, dims)?;
        let layout = layout(dtype.storage_bytes(shape.numel()))?;
        let alloc = self.mm.try_allocate_on(self.id, layout)?;
        GpuTensor::over(alloc, &self.gpu, dtype, shape)
    }

    /// A tensor of zeros (zeroed on the device before any work recorded after it runs).
    pub fn zeros(&self, dtype: DType, dims: &[usize]) -> Result<GpuTensor<'m>> {
        let shape = checked_shape(dtype, dims)?;
        let layout = layout(dtype.storage_bytes(shape.numel()))?;
        let alloc = self.mm.try_allocate_zeroed_on(self.id, layout)?;
        GpuTensor::over(alloc, &self.gpu, dtype, shape)
    }

    /// A copy of the CPU tensor `t` on this device (same dtype, shape and bytes; a
    /// non-contiguous view is made contiguous first). The upload is staged: it lands
    /// before the next submission runs.
    pub fn upload(&self, t: &Tensor<'_>) -> Result<GpuTensor<'m>> {
        let t = t.contiguous(&Provider::Vec)?;
        let g = self.tensor(t.dtype(), t.dims())?;
        let bytes: &[u8] = match t.dtype() {
            DType::F32 => bytemuck::cast_slice(t.as_f32()?),
            DType::I8 => bytemuck::cast_slice(t.as_i8()?),
            DType::Ternary => t.as_ternary()?,
        };
        self.gpu.upload(&g.alloc, bytes)?;
        Ok(g)
    }

    /// An F32 tensor of `dims` holding `data` (row-major), uploaded.
    pub fn from_f32(&self, dims: &[usize], data: &[f32]) -> Result<GpuTensor<'m>> {
        let shape = checked_shape(DType::F32, dims)?;
        if shape.numel() != data.len() {
            return Err(Error::InvalidShape {
                shape,
                reason: format!("{} elements given for {} places", data.len(), shape.numel()),
            });
        }
        let g = self.tensor(DType::F32, dims)?;
        self.gpu.upload(&g.alloc, bytemuck::cast_slice(data))?;
        Ok(g)
    }

    /// A command encoder on the device.
    pub fn encoder(&self) -> wgpu::CommandEncoder {
        self.gpu
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("bitnet-tensor"),
            })
    }

    /// Submits what `enc` recorded through the backend, so that the pool's fences count
    /// it (see [`WgpuBackend::submit`]).
    pub fn submit(&self, enc: wgpu::CommandEncoder) -> wgpu::SubmissionIndex {
        self.gpu.submit([enc.finish()])
    }
}

/// The shape of a new GPU tensor: at least one element (a kernel operand is never empty,
/// and an empty block has no buffer range), and a ternary last dimension in whole bytes.
fn checked_shape(dtype: DType, dims: &[usize]) -> Result<Shape> {
    let shape = Shape::new(dims)?;
    if shape.numel() == 0 {
        return Err(Error::InvalidShape {
            shape,
            reason: "a GPU tensor needs at least one element".into(),
        });
    }
    if dtype == DType::Ternary && dims.last().is_some_and(|d| d % 4 != 0) {
        return Err(Error::InvalidShape {
            shape,
            reason: "the last dimension of a ternary tensor must be a multiple of 4".into(),
        });
    }
    Ok(shape)
}

fn layout(bytes: usize) -> Result<Layout> {
    Layout::from_size_align(bytes, GPU_ALIGN)
        .map_err(|e| Error::Config(format!("a block of {bytes} B: {e}")))
}

/// A contiguous tensor on a GPU device: dtype, shape and its own pooled block.
///
/// Made by [`GpuDevice::tensor`], [`GpuDevice::zeros`], [`GpuDevice::upload`] (or
/// [`GpuTensor::from_tensor`]) and by the tensor ops of
/// [`GpuRecorder`](super::GpuRecorder); read back with [`to_cpu`](Self::to_cpu). Dropping
/// it frees the block (see the [module docs](self) for when the range is reused).
pub struct GpuTensor<'m> {
    /// The block; freeing it is what the pool's fence watches.
    alloc: Allocation<'m>,
    /// The block's buffer range (dropped with the block: no copy outlives it).
    range: GpuRange,
    /// For downloads.
    gpu: WgpuBackend,
    dtype: DType,
    shape: Shape,
}

impl std::fmt::Debug for GpuTensor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuTensor")
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .field("device", &self.alloc.device())
            .field("offset", &self.range.offset)
            .finish()
    }
}

impl<'m> GpuTensor<'m> {
    fn over(alloc: Allocation<'m>, gpu: &WgpuBackend, dtype: DType, shape: Shape) -> Result<Self> {
        let range = gpu.binding(&alloc)?;
        Ok(GpuTensor {
            alloc,
            range,
            gpu: gpu.clone(),
            dtype,
            shape,
        })
    }

    /// A copy of the CPU tensor `t` on `dev`: [`GpuDevice::upload`].
    pub fn from_tensor(dev: &GpuDevice<'m>, t: &Tensor<'_>) -> Result<Self> {
        dev.upload(t)
    }

    /// Downloads the tensor into a new CPU tensor from `p` (same dtype, shape and bytes).
    /// Blocks until the GPU has finished everything submitted so far; work recorded and
    /// not yet submitted is not waited for (submit it first).
    pub fn to_cpu<'n>(&self, p: &Provider<'n>) -> Result<Tensor<'n>> {
        let bytes = self.gpu.download(&self.alloc)?;
        let mut t = Tensor::new(p, self.dtype, self.dims())?;
        let dst: &mut [u8] = match self.dtype {
            DType::F32 => bytemuck::cast_slice_mut(t.as_f32_mut()?),
            DType::I8 => bytemuck::cast_slice_mut(t.as_i8_mut()?),
            DType::Ternary => t.as_ternary_mut()?,
        };
        if dst.len() != bytes.len() {
            return Err(Error::Gpu {
                op: "GpuTensor::to_cpu",
                reason: format!("{} B downloaded for {} B", bytes.len(), dst.len()),
            });
        }
        dst.copy_from_slice(&bytes);
        Ok(t)
    }

    /// Downloads an F32 tensor's values (blocks as [`to_cpu`](Self::to_cpu) does).
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        self.expect_dtype("to_vec_f32", DType::F32)?;
        Ok(bytemuck::pod_collect_to_vec(
            &self.gpu.download(&self.alloc)?,
        ))
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Dimensions.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// Bytes of the elements (the block's length).
    pub fn byte_len(&self) -> usize {
        self.alloc.len()
    }

    /// The manager's device the block is on.
    pub fn device(&self) -> DeviceId {
        self.alloc.device()
    }

    /// The pooled block.
    pub fn allocation(&self) -> &Allocation<'m> {
        &self.alloc
    }

    /// The block's buffer range, for bind groups and copies of your own.
    pub fn range(&self) -> &GpuRange {
        &self.range
    }

    /// The tensor as a kernel operand: its range, the size rounded up to a word (inside
    /// the block's own padding).
    pub fn slice(&self) -> GpuSlice<'_> {
        GpuSlice::new(
            &self.range.buffer,
            self.range.offset,
            self.range.binding_size(),
        )
    }

    /// The same block with new dimensions of the same element count (no copy).
    pub fn reshape(mut self, dims: &[usize]) -> Result<Self> {
        let shape = checked_shape(self.dtype, dims)?;
        if shape.numel() != self.numel() {
            return Err(Error::InvalidShape {
                shape,
                reason: format!("reshape of {} elements ({})", self.numel(), self.shape),
            });
        }
        self.shape = shape;
        Ok(self)
    }

    /// Marks the block as persistent for the manager's leak detection (weights, KV
    /// cache): it is meant to outlive every step and scope.
    pub fn persist(self) -> Self {
        self.alloc.persist();
        self
    }

    /// Fails unless the dtype is `dtype`.
    pub(super) fn expect_dtype(&self, op: &'static str, dtype: DType) -> Result<()> {
        if self.dtype != dtype {
            return Err(Error::DType {
                op,
                expected: dtype,
                got: self.dtype,
            });
        }
        Ok(())
    }

    /// Fails unless the dtype is `dtype` and the shape is `dims` (`None` matches any size).
    pub(super) fn expect(
        &self,
        op: &'static str,
        dtype: DType,
        dims: &[Option<usize>],
    ) -> Result<()> {
        self.expect_dtype(op, dtype)?;
        let d = self.dims();
        let ok = d.len() == dims.len()
            && d.iter()
                .zip(dims)
                .all(|(&d, want)| want.is_none_or(|w| w == d));
        if ok {
            return Ok(());
        }
        let expected: Vec<String> = dims
            .iter()
            .map(|d| d.map_or("?".to_string(), |d| d.to_string()))
            .collect();
        Err(Error::ShapeMismatch {
            op,
            expected: format!("[{}]", expected.join(", ")),
            got: self.shape,
        })
    }
}

/// Int8 activations on the GPU with one dequantization scale per row: what
/// [`GpuRecorder::absmax_quantize`](super::GpuRecorder::absmax_quantize) makes, as
/// [`QuantizedActivations`](crate::ops::QuantizedActivations) on the CPU.
#[derive(Debug)]
pub struct GpuQuantized<'m> {
    /// I8 values, `[rows, features]`.
    pub values: GpuTensor<'m>,
    /// F32 dequantization scales, `[rows]`.
    pub scales: GpuTensor<'m>,
}

/// A BitLinear weight on the GPU: packed ternary values `[out, in]` and their scale, as
/// [`TernaryWeight`](crate::ops::TernaryWeight) on the CPU.
#[derive(Debug)]
pub struct GpuTernaryWeight<'m> {
    /// Packed ternary values, `[out_features, in_features]`.
    pub weight: GpuTensor<'m>,
    /// Dequantization scale.
    pub scale: f32,
}

impl<'m> GpuTernaryWeight<'m> {
    /// The CPU weight `w` uploaded to `dev`.
    pub fn upload(dev: &GpuDevice<'m>, w: &crate::ops::TernaryWeight<'_>) -> Result<Self> {
        Ok(GpuTernaryWeight {
            weight: dev.upload(&w.weight)?,
            scale: w.scale,
        })
    }

    /// `(out_features, in_features)`.
    pub fn dims(&self) -> (usize, usize) {
        let d = self.weight.dims();
        (d[0], d.get(1).copied().unwrap_or(0))
    }
}
