//! Our pool on a GPU device, for `bench --device wgpu`: a manager whose device 0 is the
//! wgpu backend, seen through [`CountingBackend`] so that the device memory it holds is
//! counted from outside the pool, by the same rule as the baselines' buffers.

use super::{DeviceBytes, GpuContender};
use bitnet_memory::device::{
    Chunk, Decommit, DeviceError, DeviceLimits, HugePages, PageMover, Submissions, ZeroFill,
};
use bitnet_memory::{Allocation, DeviceBackend, DeviceId, MemoryConfig, MemoryManager};
use std::alloc::Layout;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Counts the bytes of the chunks a backend has out (created and not yet released) and
/// their peak; every other call goes to the backend as it is, capabilities included, so
/// the pool behaves exactly as on the bare backend.
pub struct CountingBackend<B> {
    inner: B,
    counts: Arc<ChunkBytes>,
}

/// The chunk bytes a [`CountingBackend`] saw: out now, and the most out since the reset.
#[derive(Debug, Default)]
pub struct ChunkBytes {
    now: AtomicU64,
    peak: AtomicU64,
}

impl ChunkBytes {
    /// Out now.
    pub fn now(&self) -> u64 {
        self.now.load(Relaxed)
    }
    /// The most out since the last reset.
    pub fn peak(&self) -> u64 {
        self.peak.load(Relaxed)
    }
    /// Starts a new peak from what is out now.
    pub fn reset_peak(&self) {
        self.peak.store(self.now(), Relaxed);
    }
}

impl<B: DeviceBackend> CountingBackend<B> {
    /// Wraps `inner`; the counts are shared with the returned handle.
    pub fn new(inner: B) -> (Self, Arc<ChunkBytes>) {
        let counts = Arc::new(ChunkBytes::default());
        (
            Self {
                inner,
                counts: counts.clone(),
            },
            counts,
        )
    }
}

impl<B: DeviceBackend> DeviceBackend for CountingBackend<B> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn host_visible(&self) -> bool {
        self.inner.host_visible()
    }
    fn allocate_chunk(&self, size: usize, align: usize) -> Result<Chunk, DeviceError> {
        let c = self.inner.allocate_chunk(size, align)?;
        let now = self.counts.now.fetch_add(c.size as u64, Relaxed) + c.size as u64;
        self.counts.peak.fetch_max(now, Relaxed);
        Ok(c)
    }
    fn release_chunk(&self, chunk: Chunk) {
        self.counts.now.fetch_sub(chunk.size as u64, Relaxed);
        self.inner.release_chunk(chunk)
    }
    fn capacity(&self) -> Option<usize> {
        self.inner.capacity()
    }
    fn available(&self) -> Option<usize> {
        self.inner.available()
    }
    fn decommit(&self) -> Option<&dyn Decommit> {
        self.inner.decommit()
    }
    fn huge_pages(&self) -> Option<&dyn HugePages> {
        self.inner.huge_pages()
    }
    fn page_mover(&self) -> Option<&dyn PageMover> {
        self.inner.page_mover()
    }
    fn limits(&self) -> DeviceLimits {
        self.inner.limits()
    }
    fn submissions(&self) -> Option<&dyn Submissions> {
        self.inner.submissions()
    }
    fn zero_fill(&self) -> Option<&dyn ZeroFill> {
        self.inner.zero_fill()
    }
}

/// Our pool's GPU device as a contender.
pub struct Ours<'m> {
    mm: &'m MemoryManager,
    gpu: bitnet_memory::device::wgpu::WgpuBackend,
    counts: Arc<ChunkBytes>,
    slots: Vec<Option<Allocation<'m>>>,
    bytes: DeviceBytes,
}

impl<'m> Ours<'m> {
    /// Name in the table.
    pub const NAME: &'static str = "bitnet-memory";

    /// A manager whose device 0 is `gpu` (counted), with the default configuration and no
    /// budget; the caller keeps it alive for the contender's life.
    pub fn manager(
        gpu: &bitnet_memory::device::wgpu::WgpuBackend,
    ) -> Result<(MemoryManager, Arc<ChunkBytes>), String> {
        let (backend, counts) = CountingBackend::new(gpu.clone());
        let mm = MemoryManager::builder(MemoryConfig::default())
            .device(backend, None)
            .build()
            .map_err(|e| e.to_string())?;
        Ok((mm, counts))
    }

    /// The contender over `mm` (from [`manager`](Self::manager)), with room for `slots`
    /// live tensors.
    pub fn new(
        mm: &'m MemoryManager,
        gpu: bitnet_memory::device::wgpu::WgpuBackend,
        counts: Arc<ChunkBytes>,
        slots: usize,
    ) -> Self {
        Self {
            mm,
            gpu,
            counts,
            slots: (0..slots).map(|_| None).collect(),
            bytes: DeviceBytes::default(),
        }
    }

    /// Takes the backend's counts into the contender's figures.
    fn sync(&mut self) {
        let (now, peak) = (self.counts.now(), self.counts.peak());
        self.bytes = DeviceBytes::default();
        self.bytes.add(peak);
        self.bytes.sub(peak - now);
    }
}

impl GpuContender for Ours<'_> {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn alloc(&mut self, slot: u32, size: usize) -> Result<(), String> {
        let layout = Layout::from_size_align(size.max(1), 4).map_err(|e| e.to_string())?;
        let a = self
            .mm
            .try_allocate_on(DeviceId(0), layout)
            .map_err(|e| e.to_string())?;
        self.slots[slot as usize] = Some(a);
        Ok(())
    }

    fn free(&mut self, slot: u32) {
        self.slots[slot as usize] = None;
    }

    fn submit(&mut self) {
        self.gpu.submit(std::iter::empty());
    }

    fn device_bytes(&mut self) -> &mut DeviceBytes {
        self.sync();
        &mut self.bytes
    }

    fn release_all(&mut self) {
        for s in &mut self.slots {
            *s = None;
        }
    }

    /// The peak lives in the backend's counts: reset it there.
    fn reset_peak(&mut self) {
        self.counts.reset_peak();
    }
}
