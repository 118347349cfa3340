//! [`GpuContext`]: a device and queue, with the few CPU-side steps a test or a tool needs
//! around the kernels (make a buffer, upload, submit, read back).

use super::GpuSlice;
use crate::error::{Error, Result};
use std::sync::mpsc;

/// A device and its queue, from the first adapter wgpu picks.
#[derive(Debug)]
pub struct GpuContext {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
}

impl GpuContext {
    /// Opens a device on the adapter wgpu picks by default (the `WGPU_BACKEND` and
    /// `WGPU_ADAPTER_NAME` environment variables narrow the choice), with the adapter's own
    /// limits. Returns [`Error::GpuUnavailable`] with the reason, never panics, when
    /// there is no backend, no adapter or no device.
    pub fn new() -> Result<Self> {
        if wgpu::Instance::enabled_backend_features().is_empty() {
            return Err(Error::GpuUnavailable(
                "wgpu was built without a backend for this platform".into(),
            ));
        }
        let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        let instance = wgpu::Instance::new(desc);
        let options = wgpu::RequestAdapterOptions::default();
        let adapter = pollster::block_on(instance.request_adapter(&options))
            .map_err(|e| Error::GpuUnavailable(format!("no adapter: {e}")))?;
        let info = adapter.get_info();
        let desc = wgpu::DeviceDescriptor {
            label: Some("bitnet-tensor"),
            required_limits: adapter.limits(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| Error::GpuUnavailable(format!("{} refused a device: {e}", info.name)))?;
        Ok(GpuContext {
            device,
            queue,
            info,
        })
    }

    /// The device.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// The adapter the device was opened on (name, backend, device type).
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// A zeroed buffer of `size` bytes usable as kernel storage, upload target and copy
    /// source.
    pub fn storage_buffer(&self, size: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("bitnet-tensor storage"),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// A command encoder to record kernels into.
    pub fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("bitnet-tensor"),
            })
    }

    /// Submits what `enc` recorded.
    pub fn submit(&self, enc: wgpu::CommandEncoder) {
        self.queue.submit([enc.finish()]);
    }

    /// Writes `bytes` at the start of `dst` (zero-padded to a whole word, which must fit in
    /// `dst`). Queued: it lands before the next submission runs.
    pub fn upload(&self, dst: GpuSlice<'_>, bytes: &[u8]) -> Result<()> {
        const OP: &str = "GpuContext::upload";
        let padded = (bytes.len() as u64).div_ceil(4) * 4;
        if padded > dst.size || !dst.offset.is_multiple_of(4) {
            return Err(Error::Gpu {
                op: OP,
                reason: format!(
                    "{} B (padded to {padded}) into a range of {} B at offset {}",
                    bytes.len(),
                    dst.size,
                    dst.offset
                ),
            });
        }
        if dst.offset + padded > dst.buffer.size() {
            return Err(Error::Gpu {
                op: OP,
                reason: "range past the end of its buffer".into(),
            });
        }
        let mut data = bytes.to_vec();
        data.resize(padded as usize, 0);
        if !data.is_empty() {
            self.queue.write_buffer(dst.buffer, dst.offset, &data);
        }
        Ok(())
    }

    /// Uploads `values` (as their bytes) at the start of `dst`; see [`upload`](Self::upload).
    pub fn upload_f32(&self, dst: GpuSlice<'_>, values: &[f32]) -> Result<()> {
        self.upload(dst, bytemuck::cast_slice(values))
    }

    /// Copies `src` back to the CPU: submits a copy into a staging buffer, waits for the
    /// device, maps it. `src` must be word aligned and sized, and its buffer `COPY_SRC`.
    pub fn read(&self, src: GpuSlice<'_>) -> Result<Vec<u8>> {
        let fail = |reason: String| Error::Gpu {
            op: "GpuContext::read",
            reason,
        };
        if !src.offset.is_multiple_of(4) || !src.size.is_multiple_of(4) {
            return Err(fail("range not word aligned".into()));
        }
        if src.offset + src.size > src.buffer.size() {
            return Err(fail("range past the end of its buffer".into()));
        }
        if !src.buffer.usage().contains(wgpu::BufferUsages::COPY_SRC) {
            return Err(fail("buffer lacks BufferUsages::COPY_SRC".into()));
        }
        if src.size == 0 {
            return Ok(Vec::new());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("bitnet-tensor readback"),
            size: src.size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.encoder();
        enc.copy_buffer_to_buffer(src.buffer, src.offset, &staging, 0, src.size);
        self.submit(enc);
        let (tx, rx) = mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| fail(format!("waiting for the device: {e}")))?;
        rx.recv()
            .map_err(|_| fail("the map callback never ran".into()))?
            .map_err(|e| fail(format!("mapping the staging buffer: {e}")))?;
        let bytes = staging
            .get_mapped_range(..)
            .map_err(|e| fail(format!("mapped range: {e}")))?
            .to_vec();
        staging.unmap();
        Ok(bytes)
    }

    /// Reads `src` back as f32 values; see [`read`](Self::read).
    pub fn read_f32(&self, src: GpuSlice<'_>) -> Result<Vec<f32>> {
        Ok(self
            .read(src)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}
