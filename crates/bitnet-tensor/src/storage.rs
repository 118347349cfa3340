//! Where tensor bytes come from: the memory manager, or plain `Vec`s for comparison.

use crate::error::Result;
use bitnet_memory::{Allocation, MemoryManager};
use std::alloc::Layout;

/// Alignment of every pool buffer: one cache line, enough for any SIMD load.
pub const BUFFER_ALIGN: usize = 64;

/// The source of every tensor buffer.
///
/// The model and every op take a provider, so the same code runs on the memory manager
/// and on plain `Vec`s: that is how the demo compares the two.
#[derive(Debug, Clone, Copy)]
pub enum Provider<'m> {
    /// Buffers from a memory manager (64-byte aligned).
    Manager(&'m MemoryManager),
    /// Buffers from plain `Vec<u32>` (the global allocator, 4-byte aligned), the baseline.
    Vec,
}

impl<'m> Provider<'m> {
    /// The manager, if buffers come from one.
    pub fn manager(&self) -> Option<&'m MemoryManager> {
        match self {
            Provider::Manager(mm) => Some(mm),
            Provider::Vec => None,
        }
    }

    /// A buffer of `bytes` bytes with unspecified contents (zeros for `Vec`).
    #[track_caller]
    pub fn buffer(&self, bytes: usize) -> Result<Storage<'m>> {
        Ok(Storage(match self {
            Provider::Manager(mm) => Buf::Pool(mm.try_allocate(layout(bytes))?),
            Provider::Vec => Buf::Heap {
                words: vec![0u32; bytes.div_ceil(4)],
                len: bytes,
            },
        }))
    }

    /// A zero-filled buffer of `bytes` bytes.
    #[track_caller]
    pub fn zeroed_buffer(&self, bytes: usize) -> Result<Storage<'m>> {
        match self {
            Provider::Manager(mm) => Ok(Storage(Buf::Pool(mm.try_allocate_zeroed(layout(bytes))?))),
            Provider::Vec => self.buffer(bytes),
        }
    }
}

fn layout(bytes: usize) -> Layout {
    Layout::from_size_align(bytes, BUFFER_ALIGN)
        .unwrap_or_else(|_| Layout::from_size_align(0, BUFFER_ALIGN).expect("valid layout"))
}

/// The bytes behind one or more tensor views.
pub struct Storage<'m>(Buf<'m>);

enum Buf<'m> {
    Pool(Allocation<'m>),
    Heap { words: Vec<u32>, len: usize },
}

impl<'m> Storage<'m> {
    /// The manager's allocation behind these bytes (`None` for `Vec` storage): what the
    /// leak-scope hooks of [`crate::lifecycle`] will hand to the manager.
    pub fn allocation(&self) -> Option<&Allocation<'m>> {
        match &self.0 {
            Buf::Pool(a) => Some(a),
            Buf::Heap { .. } => None,
        }
    }

    /// The bytes.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        match &self.0 {
            Buf::Pool(a) => a.as_slice(),
            Buf::Heap { words, len } => &bytemuck::cast_slice(words)[..*len],
        }
    }

    /// The bytes, mutable.
    #[inline]
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        match &mut self.0 {
            Buf::Pool(a) => a.as_mut_slice(),
            Buf::Heap { words, len } => &mut bytemuck::cast_slice_mut(words)[..*len],
        }
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        match &self.0 {
            Buf::Pool(a) => a.len(),
            Buf::Heap { len, .. } => *len,
        }
    }

    /// Whether the storage holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the bytes come from a memory manager.
    pub fn is_pooled(&self) -> bool {
        matches!(self.0, Buf::Pool(_))
    }
}

impl std::fmt::Debug for Storage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("len", &self.len())
            .field("pooled", &self.is_pooled())
            .finish()
    }
}
