//! The two ways a program gets GPU buffers without our pool, for `bench --device wgpu`:
//! the device's own calls (a `create_buffer` and a drop per tensor) and a plain cache of
//! freed buffers keyed by size.

use super::{DeviceBytes, GpuContender};
use std::collections::HashMap;

/// What every buffer of the benchmark can be used for: what the pool's chunks are too.
pub const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// A buffer size the device accepts for `size` requested bytes: whole 4-byte words
/// (`wgpu::COPY_BUFFER_ALIGNMENT`), at least one.
pub fn buffer_size(size: usize) -> u64 {
    (size.max(1) as u64).next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT)
}

fn create(device: &wgpu::Device, size: u64) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("bench tensor"),
        size,
        usage: USAGE,
        mapped_at_creation: false,
    })
}

/// An empty submission and a poll that does not wait: what every contender does every
/// `submit_every` operations.
fn submit_empty(device: &wgpu::Device, queue: &wgpu::Queue) {
    queue.submit(std::iter::empty());
    let _ = device.poll(wgpu::PollType::Poll);
}

/// Drops every live buffer of `slots`, counting its bytes out.
fn drop_slots(slots: &mut [Option<wgpu::Buffer>], bytes: &mut DeviceBytes) {
    for s in slots {
        if let Some(b) = s.take() {
            bytes.sub(b.size());
        }
    }
}

/// A `create_buffer` per tensor, dropped when the tensor is freed (wgpu destroys it once
/// the GPU work that may use it is done).
pub struct CreateDrop {
    device: wgpu::Device,
    queue: wgpu::Queue,
    slots: Vec<Option<wgpu::Buffer>>,
    bytes: DeviceBytes,
}

impl CreateDrop {
    /// Over `device` and `queue`, with room for `slots` live tensors.
    pub fn new(device: wgpu::Device, queue: wgpu::Queue, slots: usize) -> Self {
        Self {
            device,
            queue,
            slots: (0..slots).map(|_| None).collect(),
            bytes: DeviceBytes::default(),
        }
    }
}

impl GpuContender for CreateDrop {
    fn name(&self) -> &'static str {
        "create-drop"
    }

    fn alloc(&mut self, slot: u32, size: usize) -> Result<(), String> {
        let n = buffer_size(size);
        self.slots[slot as usize] = Some(create(&self.device, n));
        self.bytes.add(n);
        Ok(())
    }

    fn free(&mut self, slot: u32) {
        if let Some(b) = self.slots[slot as usize].take() {
            self.bytes.sub(b.size());
        }
    }

    fn submit(&mut self) {
        submit_empty(&self.device, &self.queue);
    }

    fn device_bytes(&mut self) -> &mut DeviceBytes {
        &mut self.bytes
    }

    fn release_all(&mut self) {
        drop_slots(&mut self.slots, &mut self.bytes);
    }
}

/// A plain cache: a freed buffer goes onto the list of its exact size and the next request
/// of that size takes it; nothing is ever given back. What a program writes first when
/// `create_buffer` shows up in its profile.
pub struct FreeList {
    device: wgpu::Device,
    queue: wgpu::Queue,
    slots: Vec<Option<wgpu::Buffer>>,
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    bytes: DeviceBytes,
}

impl FreeList {
    /// Over `device` and `queue`, with room for `slots` live tensors.
    pub fn new(device: wgpu::Device, queue: wgpu::Queue, slots: usize) -> Self {
        Self {
            device,
            queue,
            slots: (0..slots).map(|_| None).collect(),
            free: HashMap::new(),
            bytes: DeviceBytes::default(),
        }
    }
}

impl GpuContender for FreeList {
    fn name(&self) -> &'static str {
        "free-list"
    }

    fn alloc(&mut self, slot: u32, size: usize) -> Result<(), String> {
        let n = buffer_size(size);
        let b = match self.free.get_mut(&n).and_then(Vec::pop) {
            Some(b) => b,
            None => {
                self.bytes.add(n);
                create(&self.device, n)
            }
        };
        self.slots[slot as usize] = Some(b);
        Ok(())
    }

    fn free(&mut self, slot: u32) {
        if let Some(b) = self.slots[slot as usize].take() {
            self.free.entry(b.size()).or_default().push(b);
        }
    }

    fn submit(&mut self) {
        submit_empty(&self.device, &self.queue);
    }

    fn device_bytes(&mut self) -> &mut DeviceBytes {
        &mut self.bytes
    }

    fn release_all(&mut self) {
        drop_slots(&mut self.slots, &mut self.bytes);
        for (_, list) in self.free.drain() {
            for b in list {
                self.bytes.sub(b.size());
            }
        }
    }
}
