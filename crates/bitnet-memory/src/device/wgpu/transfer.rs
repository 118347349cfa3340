//! Using a pooled block on the GPU: its buffer range for bind groups and copies, uploads
//! and downloads. Every failure is an error, never a panic.
#![deny(unsafe_code)]

use super::WgpuBackend;
use crate::device::DeviceBlock;
use crate::error::{MemoryError, Result};

/// A block as wgpu sees it: the chunk's buffer (a clone of the handle), the block's
/// offset in it and its length, for bind groups and copies.
///
/// The buffer is the whole chunk, shared with other blocks: use only
/// `[offset, offset + size)` of it (or up to [`binding_size`](Self::binding_size),
/// which stays inside the block).
#[derive(Debug, Clone)]
pub struct GpuRange {
    /// The chunk's buffer.
    pub buffer: wgpu::Buffer,
    /// Offset of the block in the buffer, in bytes: a multiple of the device's
    /// `min_storage_buffer_offset_alignment`.
    pub offset: u64,
    /// Length of the block as requested, in bytes.
    pub size: u64,
}

impl GpuRange {
    /// The size to bind: `size` rounded up to a multiple of 4, as storage bindings and
    /// copies require. The pool rounds every block on the device to at least that, so
    /// the extra bytes are the block's own padding.
    pub fn binding_size(&self) -> u64 {
        self.size.next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT)
    }

    /// The block as a buffer binding (offset and [`binding_size`](Self::binding_size)).
    pub fn as_buffer_binding(&self) -> wgpu::BufferBinding<'_> {
        wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: wgpu::BufferSize::new(self.binding_size()),
        }
    }

    /// The whole block as a binding resource, for a `wgpu::BindGroupEntry`.
    pub fn as_entire_binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(self.as_buffer_binding())
    }
}

fn invalid(reason: String) -> MemoryError {
    MemoryError::InvalidDeviceAccess { reason }
}

impl WgpuBackend {
    /// The buffer range of `block` (an `Allocation` on this backend's device, or a
    /// `DeviceRange`). Fails for a zero-sized block (it has no memory) and for a block of
    /// another device.
    pub fn binding(&self, block: &(impl DeviceBlock + ?Sized)) -> Result<GpuRange> {
        let r = block
            .device_range()
            .ok_or_else(|| invalid("a zero-sized block has no device range".to_string()))?;
        let buffers = self.shared.buffers.lock();
        let Some(buffer) = buffers.get(&r.chunk.0) else {
            return Err(invalid(format!(
                "chunk {:#x} is not a buffer of this {} (a block of another device?)",
                r.chunk.0,
                self.describe()
            )));
        };
        let (offset, size) = (r.offset as u64, r.len as u64);
        if offset + size > buffer.size() {
            return Err(invalid(format!(
                "range {offset}..{} is outside its buffer of {} B",
                offset + size,
                buffer.size()
            )));
        }
        Ok(GpuRange {
            buffer: buffer.clone(),
            offset,
            size,
        })
    }

    /// Writes `data` to the start of `block` with `Queue::write_buffer`: staged, it lands
    /// at the start of the next submission (before command buffers recorded earlier run).
    /// `data` may be shorter than the block; a length that is not a multiple of 4 is
    /// padded with zeros up to the next one, inside the block's own padding.
    pub fn upload(&self, block: &(impl DeviceBlock + ?Sized), data: &[u8]) -> Result<()> {
        let Some(r) = block.device_range() else {
            return if data.is_empty() {
                Ok(())
            } else {
                Err(invalid(format!(
                    "upload of {} B into a zero-sized block",
                    data.len()
                )))
            };
        };
        if data.len() > r.len {
            return Err(invalid(format!(
                "upload of {} B into a block of {} B",
                data.len(),
                r.len
            )));
        }
        if data.is_empty() {
            return Ok(());
        }
        let range = self.binding(&r)?;
        let padded;
        let bytes = if data.len().is_multiple_of(4) {
            data
        } else {
            let mut v = data.to_vec();
            v.resize(data.len().next_multiple_of(4), 0);
            padded = v;
            &padded[..]
        };
        let device = &self.shared.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        self.shared
            .queue
            .write_buffer(&range.buffer, range.offset, bytes);
        match pollster::block_on(scope.pop()) {
            None => Ok(()),
            Some(e) => Err(invalid(format!("upload refused: {e}"))),
        }
    }

    /// Reads `block` back: copies it to a mappable staging buffer in a submission of its
    /// own (made through [`submit`](Self::submit), so it counts), waits for it and maps
    /// it. Blocks the calling thread until the GPU is done with everything submitted so
    /// far. A zero-sized block reads as empty.
    pub fn download(&self, block: &(impl DeviceBlock + ?Sized)) -> Result<Vec<u8>> {
        let Some(r) = block.device_range() else {
            return Ok(Vec::new());
        };
        let range = self.binding(&r)?;
        let len = range.binding_size();
        let gone = |what: String| MemoryError::DeviceUnavailable {
            what: format!("download from {}: {what}", self.describe()),
        };
        let staging = self
            .create_buffer(
                len,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            )
            .map_err(|e| gone(format!("no staging buffer of {len} B: {e}")))?;
        let device = &self.shared.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("bitnet-memory download"),
        });
        encoder.copy_buffer_to_buffer(&range.buffer, range.offset, &staging, 0, len);
        let index = self.submit([encoder.finish()]);
        if let Some(e) = pollster::block_on(scope.pop()) {
            staging.destroy();
            return Err(gone(format!("copy refused: {e}")));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        staging
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |res| {
                let _ = tx.send(res);
            });
        device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .map_err(|e| gone(e.to_string()))?;
        match rx.try_recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(gone(format!("mapping failed: {e}"))),
            Err(_) => return Err(gone("the mapping never completed".to_string())),
        }
        let mut out = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| gone(format!("mapped range: {e}")))?;
            view.to_vec()
        };
        staging.unmap();
        staging.destroy();
        out.truncate(r.len);
        Ok(out)
    }
}

/// Zeros through [`upload`](WgpuBackend::upload) (a staged `write_buffer`): they land at the
/// start of the next submission, before any work recorded after the allocation.
impl crate::device::ZeroFill for WgpuBackend {
    fn zero_range(
        &self,
        range: crate::device::DeviceRange,
    ) -> std::result::Result<(), crate::device::DeviceError> {
        self.upload(&range, &vec![0u8; range.len])
            .map_err(|e| crate::device::DeviceError {
                size: range.len,
                align: 4,
                reason: e.to_string(),
                lost: false,
            })
    }
}
