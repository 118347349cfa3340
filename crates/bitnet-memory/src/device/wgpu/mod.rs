//! The GPU device backend over [wgpu](https://wgpu.rs) (Vulkan, Metal, DX12), behind the
//! `wgpu` feature.
//!
//! A chunk is one `wgpu::Buffer` (usage `STORAGE | COPY_SRC | COPY_DST`) that the pool
//! sub-allocates like any other chunk; the host never sees its bytes (`host: None`).
//! Blocks reach the GPU through [`WgpuBackend::binding`] (the buffer, offset and size for
//! a bind group or a copy), [`WgpuBackend::upload`] and [`WgpuBackend::download`].
//!
//! ```no_run
//! use bitnet_memory::device::wgpu::{WgpuBackend, WgpuOptions};
//! use bitnet_memory::{CpuBackend, DeviceId, MemoryConfig, MemoryManager};
//! use std::alloc::Layout;
//!
//! let gpu = WgpuBackend::new(&WgpuOptions::default())?;
//! let mm = MemoryManager::builder(MemoryConfig::default())
//!     .device(CpuBackend::new(), None)
//!     .device(gpu.clone(), Some(512 << 20))
//!     .build()?;
//! let a = mm.try_allocate_on(DeviceId(1), Layout::from_size_align(4096, 4)?)?;
//! gpu.upload(&a, &[7u8; 4096])?;
//! let range = gpu.binding(&a)?; // range.as_entire_binding() in a bind group
//! assert_eq!(gpu.download(&a)?, vec![7u8; 4096]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Submitting work: the fence rule
//!
//! A freed range must not be handed out again while GPU work that may use it is still to
//! be submitted or running: `Queue::write_buffer` is staged and runs at the start of the
//! next submission, before command buffers recorded earlier, so an upload into a reused
//! range would feed an already recorded kernel the new owner's data. The backend counts
//! submissions ([`Submissions`]) and the pool holds every freed block back until the next
//! submission after the free has finished. For that count to be right, **GPU work that
//! touches pooled buffers must be submitted through [`WgpuBackend::submit`]**, or, after
//! your own `queue.submit`, you call [`WgpuBackend::note_submitted`] before any other
//! submission on that queue. Work recorded before a free must go into the next
//! submission after it (or an earlier one). The pool never submits anything itself to
//! reclaim memory: freed blocks come back as your submissions finish (checked at each
//! allocation and trim, without blocking).
//!
//! # Blocks share buffers
//!
//! wgpu tracks how a buffer is used per buffer, not per range, and blocks of one chunk
//! share its buffer: in one dispatch, two pooled blocks of the same chunk cannot be bound
//! one `var<storage, read>` and the other `var<storage, read_write>` (a usage conflict).
//! Declare the storage bindings of pooled blocks `read_write` (non-overlapping writable
//! ranges of one buffer are fine), or keep read-only data in a pool of its own.
//!
//! # Limits
//!
//! The pool keeps every block within the device's limits ([`DeviceLimits`]): offsets are
//! multiples of `min_storage_buffer_offset_alignment` (at least 4), chunks never exceed
//! `max_buffer_size`, and a request above `max_storage_buffer_binding_size` (or one that
//! would need a buffer above `max_buffer_size`) fails with `MemoryError::TooLarge`,
//! distinct from a full device. A buffer the driver refuses (out of memory) is caught
//! with error scopes and becomes a `DeviceError`, so the manager trims and retries as it
//! does for the CPU. A lost device makes every later chunk request fail with
//! `MemoryError::DeviceUnavailable`.
#![deny(unsafe_code)]

mod adapter;
mod transfer;

#[cfg(test)]
mod tests;

pub use transfer::GpuRange;

use super::{Chunk, ChunkHandle, DeviceBackend, DeviceError, DeviceLimits, Submissions};
use crate::error::{MemoryError, Result};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

/// How [`WgpuBackend::new`] picks its adapter. Every field has a default
/// ([`WgpuOptions::default`]): the primary backends, high performance, any name, any
/// adapter.
#[derive(Debug, Clone)]
pub struct WgpuOptions {
    /// Backends to look on. Default: `wgpu::Backends::PRIMARY` (Vulkan, Metal, DX12;
    /// only those compiled in for the target count).
    pub backends: wgpu::Backends,
    /// Which kind of adapter to prefer when several match: `HighPerformance` (the
    /// default) prefers discrete GPUs, `LowPower` integrated ones, `None` takes the first.
    pub power_preference: wgpu::PowerPreference,
    /// Only adapters whose name contains this (case-insensitive), e.g. `"llvmpipe"`.
    /// Default: `None` (any).
    pub name_filter: Option<String>,
    /// Only a fallback (software, CPU-type) adapter such as lavapipe. Default: `false`.
    pub force_fallback_adapter: bool,
}

impl Default for WgpuOptions {
    fn default() -> Self {
        Self {
            backends: wgpu::Backends::PRIMARY,
            power_preference: wgpu::PowerPreference::HighPerformance,
            name_filter: None,
            force_fallback_adapter: false,
        }
    }
}

impl WgpuOptions {
    /// The defaults, narrowed by wgpu's own environment variables where they are set:
    /// `WGPU_BACKEND` (a comma list of `vulkan`, `metal`, `dx12`, `gl`: the backends to
    /// look on), `WGPU_ADAPTER_NAME` (the name filter) and `WGPU_POWER_PREF` (`low`,
    /// `high` or `none`). What `bitnet-mem demo --device wgpu` and
    /// `bench --device wgpu` open: `WGPU_ADAPTER_NAME=llvmpipe` picks lavapipe on a
    /// machine with a GPU too, and a setting that matches nothing fails with
    /// `MemoryError::DeviceUnavailable` naming what was looked for.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any source of variables (for tests).
    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let mut o = Self::default();
        if let Some(b) = var("WGPU_BACKEND") {
            o.backends = wgpu::Backends::from_comma_list(&b);
        }
        if let Some(name) = var("WGPU_ADAPTER_NAME").filter(|n| !n.is_empty()) {
            o.name_filter = Some(name);
        }
        match var("WGPU_POWER_PREF").map(|p| p.to_lowercase()).as_deref() {
            Some("low") => o.power_preference = wgpu::PowerPreference::LowPower,
            Some("high") => o.power_preference = wgpu::PowerPreference::HighPerformance,
            Some("none") => o.power_preference = wgpu::PowerPreference::None,
            _ => {}
        }
        o
    }
}

/// A GPU device as a [`DeviceBackend`]: chunks are `wgpu::Buffer`s, kept by handle.
///
/// Cheap to clone (an `Arc` inside): keep one clone for [`binding`](Self::binding),
/// [`upload`](Self::upload), [`download`](Self::download) and [`submit`](Self::submit),
/// and give another to the manager's builder. See the [module docs](self) for the rule
/// on submitting work.
#[derive(Clone)]
pub struct WgpuBackend {
    shared: Arc<Shared>,
}

struct Shared {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    /// Live chunks by handle value.
    buffers: Mutex<HashMap<u64, wgpu::Buffer>>,
    /// This backend's mark in the high bits of its handles, so that a handle of another
    /// backend (another wgpu device, the CPU) is never taken for one of ours.
    tag: u64,
    next: AtomicU64,
    held_bytes: AtomicUsize,
    /// Held while a submission is made and counted, so numbers follow the queue order.
    submit_lock: Mutex<()>,
    submitted: AtomicU64,
    /// Highest finished submission number; bumped from `on_submitted_work_done`.
    completed: Arc<AtomicU64>,
    /// wgpu's index of each unfinished submission made through `submit`, by number
    /// (oldest first, at most [`INDICES_KEPT`]): what `wait_for` waits on.
    indices: Mutex<VecDeque<(u64, wgpu::SubmissionIndex)>>,
    /// Why the device was lost, once it was.
    lost: Arc<Mutex<Option<String>>>,
}

/// Unfinished submissions whose wgpu index is kept for `wait_for`; older ones are
/// forgotten (a wait for one of them waits for the oldest kept, which finishes after it).
const INDICES_KEPT: usize = 64;

/// Handles carry `0x5747` ("WG") and a per-process backend number in their top 32 bits.
const HANDLE_MARK: u64 = 0x5747 << 48;
static BACKENDS_MADE: AtomicU64 = AtomicU64::new(1);

impl WgpuBackend {
    /// Opens a GPU: picks an adapter as `options` say and requests a device with the
    /// adapter's own limits (so `max_buffer_size` and the others are the adapter's).
    ///
    /// Returns `MemoryError::DeviceUnavailable` naming the backends tried, the name
    /// filter and the adapters seen when no adapter matches or the device cannot be made;
    /// never panics for a missing GPU.
    pub fn new(options: &WgpuOptions) -> Result<Self> {
        let (device, queue) = adapter::open(options)?;
        Ok(Self::from_device(device, queue))
    }

    /// A backend over a device you made yourself. Its limits and adapter info are read
    /// from the device. Sets the device's lost callback (replacing one you set).
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        let lost = Arc::new(Mutex::new(None));
        let flag = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            *flag.lock() = Some(format!("{reason:?}: {message}"));
        });
        let number = BACKENDS_MADE.fetch_add(1, SeqCst) & 0xffff;
        Self {
            shared: Arc::new(Shared {
                info: device.adapter_info(),
                limits: device.limits(),
                device,
                queue,
                buffers: Mutex::new(HashMap::new()),
                tag: HANDLE_MARK | (number << 32),
                next: AtomicU64::new(0),
                held_bytes: AtomicUsize::new(0),
                submit_lock: Mutex::new(()),
                submitted: AtomicU64::new(0),
                completed: Arc::new(AtomicU64::new(0)),
                indices: Mutex::new(VecDeque::new()),
                lost,
            }),
        }
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.shared.device
    }

    /// The device's queue. Submit work that touches pooled buffers through
    /// [`submit`](Self::submit), not through this queue directly (or call
    /// [`note_submitted`](Self::note_submitted) after).
    pub fn queue(&self) -> &wgpu::Queue {
        &self.shared.queue
    }

    /// The device's wgpu limits (the pool's view of them is
    /// [`DeviceBackend::limits`], a [`DeviceLimits`]).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.shared.limits
    }

    /// The adapter the device runs on.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.shared.info
    }

    /// Buffers (chunks) this backend holds now.
    pub fn buffer_count(&self) -> usize {
        self.shared.buffers.lock().len()
    }

    /// Bytes of the buffers this backend holds now.
    pub fn buffer_bytes(&self) -> usize {
        self.shared.held_bytes.load(SeqCst)
    }

    /// Why the device was lost, if it was.
    pub fn lost(&self) -> Option<String> {
        self.shared.lost.lock().clone()
    }

    /// Submits `command_buffers` to the queue and counts the submission, so that blocks
    /// freed before it are handed out again only once it (or a later one) has finished.
    pub fn submit<I: IntoIterator<Item = wgpu::CommandBuffer>>(
        &self,
        command_buffers: I,
    ) -> wgpu::SubmissionIndex {
        let _order = self.shared.submit_lock.lock();
        let index = self.shared.queue.submit(command_buffers);
        let n = self.count_submission();
        let done = self.shared.completed.load(SeqCst);
        let mut kept = self.shared.indices.lock();
        while kept
            .front()
            .is_some_and(|&(k, _)| k <= done || kept.len() >= INDICES_KEPT)
        {
            kept.pop_front();
        }
        kept.push_back((n, index.clone()));
        index
    }

    /// Counts a submission you made with your own `queue.submit` (call it right after,
    /// before any other submission on the queue); returns its number. Without it, the
    /// pool would count your submission's completion towards no free, and blocks freed
    /// before it would wait for the next counted one.
    pub fn note_submitted(&self) -> u64 {
        let _order = self.shared.submit_lock.lock();
        self.count_submission()
    }

    /// Numbers the submission just made (submit lock held) and registers its completion.
    fn count_submission(&self) -> u64 {
        let n = self.shared.submitted.load(SeqCst) + 1;
        let done = Arc::clone(&self.shared.completed);
        // Runs once the latest submission (this one) has finished, at a later poll.
        self.shared.queue.on_submitted_work_done(move || {
            done.fetch_max(n, SeqCst);
        });
        self.shared.submitted.store(n, SeqCst);
        n
    }

    /// Blocks until every submission made so far has finished.
    pub fn wait_idle(&self) -> Result<()> {
        self.shared
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| MemoryError::DeviceUnavailable {
                what: format!("waiting for {}: {e}", self.describe()),
            })
    }

    /// `"wgpu device <adapter> (<backend>)"`, for messages.
    fn describe(&self) -> String {
        format!(
            "wgpu device {} ({:?})",
            self.shared.info.name, self.shared.info.backend
        )
    }

    /// Creates a buffer inside out-of-memory, validation and internal error scopes, so
    /// that a refusal comes back as an error instead of reaching wgpu's uncaptured-error
    /// handler (which panics). The scopes are this thread's.
    fn create_buffer(&self, size: u64, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer, String> {
        let device = &self.shared.device;
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("bitnet-memory"),
            size,
            usage,
            mapped_at_creation: false,
        });
        // Innermost first.
        let errors = [
            pollster::block_on(internal.pop()),
            pollster::block_on(validation.pop()),
            pollster::block_on(oom.pop()),
        ];
        match errors.into_iter().flatten().next() {
            None => Ok(buffer),
            Some(e) => {
                buffer.destroy();
                Err(e.to_string())
            }
        }
    }
}

impl std::fmt::Debug for WgpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WgpuBackend")
            .field("adapter", &self.shared.info.name)
            .field("backend", &self.shared.info.backend)
            .field("buffers", &self.buffer_count())
            .field("submitted", &self.shared.submitted.load(SeqCst))
            .finish()
    }
}

impl DeviceBackend for WgpuBackend {
    fn name(&self) -> &str {
        "wgpu"
    }

    fn host_visible(&self) -> bool {
        false
    }

    /// A new buffer of `size` bytes (rounded up to a multiple of 4); `align` needs
    /// nothing here: block offsets are relative to the buffer.
    fn allocate_chunk(&self, size: usize, align: usize) -> Result<Chunk, DeviceError> {
        let refuse = |reason: String, lost: bool| DeviceError {
            size,
            align,
            reason,
            lost,
        };
        if let Some(why) = self.lost() {
            return Err(refuse(
                format!("{} was lost ({why})", self.describe()),
                true,
            ));
        }
        let usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        let bytes = (size as u64).next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT);
        let buffer = self
            .create_buffer(bytes, usage)
            .map_err(|e| refuse(format!("{} refused a buffer: {e}", self.describe()), false))?;
        let handle = self.shared.tag | self.shared.next.fetch_add(1, SeqCst);
        self.shared.buffers.lock().insert(handle, buffer);
        self.shared.held_bytes.fetch_add(size, SeqCst);
        Ok(Chunk {
            handle: ChunkHandle(handle),
            size,
            host: None,
        })
    }

    /// Destroys the chunk's buffer (wgpu frees it once submitted work using it is done).
    fn release_chunk(&self, chunk: Chunk) {
        if let Some(buffer) = self.shared.buffers.lock().remove(&chunk.handle.0) {
            buffer.destroy();
            self.shared.held_bytes.fetch_sub(chunk.size, SeqCst);
        }
    }

    fn capacity(&self) -> Option<usize> {
        None
    }

    fn available(&self) -> Option<usize> {
        None
    }

    fn limits(&self) -> DeviceLimits {
        let l = &self.shared.limits;
        let clamp = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        DeviceLimits {
            min_align: (l.min_storage_buffer_offset_alignment as usize)
                .max(wgpu::COPY_BUFFER_ALIGNMENT as usize),
            // Whole pages: the pool asks for chunks in multiples of 4 KiB.
            max_chunk: clamp(l.max_buffer_size) & !4095,
            max_chunk_name: "max_buffer_size",
            max_block: clamp(l.max_storage_buffer_binding_size),
            max_block_name: "max_storage_buffer_binding_size",
        }
    }

    fn submissions(&self) -> Option<&dyn Submissions> {
        Some(self)
    }

    fn zero_fill(&self) -> Option<&dyn super::ZeroFill> {
        Some(self)
    }
}

impl Submissions for WgpuBackend {
    fn submitted(&self) -> u64 {
        self.shared.submitted.load(SeqCst)
    }

    /// Polls the device with a wait on submission `n`'s wgpu index (the next kept one
    /// when `n` was noted rather than made through [`submit`](WgpuBackend::submit): it
    /// finishes after `n`), at most `timeout`.
    fn wait_for(&self, n: u64, timeout: std::time::Duration) -> bool {
        if self.completed() >= n {
            return true;
        }
        if n > self.submitted() {
            return false;
        }
        let index = {
            let kept = self.shared.indices.lock();
            kept.iter().find(|&&(k, _)| k >= n).map(|(_, i)| i.clone())
        };
        // `None`: a noted submission newer than every kept one; the latest covers it.
        // A timeout or a lost device is an `Err`: then `n` has simply not finished.
        let _ = self.shared.device.poll(wgpu::PollType::Wait {
            submission_index: index,
            timeout: Some(timeout),
        });
        self.completed() >= n
    }

    /// Polls the device without blocking (finished submissions run their callbacks),
    /// then reads the highest finished submission number.
    fn completed(&self) -> u64 {
        // A lost device's poll fails; its count stays where it was.
        let _ = self.shared.device.poll(wgpu::PollType::Poll);
        self.shared.completed.load(SeqCst)
    }
}
