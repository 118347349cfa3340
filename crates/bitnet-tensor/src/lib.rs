//! Tensors and BitNet b1.58 ops on a [`bitnet_memory::MemoryManager`].
