//! Tensors and BitNet b1.58 ops on a [`bitnet_memory::MemoryManager`]: the application
//! layer, and the memory system's first real client.
//!
//! Every buffer (weights, KV cache, activations, temporaries) comes from a [`Provider`]:
//! a memory manager, or plain `Vec`s for comparison.
//!
//! ```
//! use bitnet_memory::{MemoryConfig, MemoryManager};
//! use bitnet_tensor::{ops, Exec, Provider, Tensor};
//!
//! let mm = MemoryManager::new(MemoryConfig::default())?;
//! let p = Provider::Manager(&mm);
//! let wf = Tensor::from_f32(&p, &[2, 4], &[0.9, -0.1, -1.2, 0.4, 0.0, 0.5, -0.6, 1.0])?;
//! let w = ops::absmean_quantize(&wf, &p)?;           // ternary, 2 bits per weight
//! assert_eq!(w.weight.to_vec_i8(), [1, 0, -1, 1, 0, 1, -1, 1]);
//! let x = Tensor::from_f32(&p, &[1, 4], &[1.0, 2.0, 3.0, 4.0])?;
//! let xq = ops::absmax_quantize(&x, &p)?;            // int8, one scale per row
//! let y = ops::bitlinear(&xq, &w, &p, &Exec::sequential())?;
//! assert_eq!(y.dims(), &[1, 2]);
//! drop((wf, w, x, xq, y));
//! assert_eq!(mm.metrics().live_allocations(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod dtype;
pub mod error;
pub mod exec;
#[cfg(feature = "wgpu")]
pub mod gpu;
pub mod lifecycle;
pub mod ops;
pub mod storage;
pub mod tensor;
pub mod ternary;

pub use dtype::{DType, Shape};
pub use error::{Error, Result};
pub use exec::Exec;
pub use storage::{Provider, Storage};
pub use tensor::Tensor;
pub mod model;

pub use model::{Model, ModelConfig};
pub mod demo;
pub mod rss;

pub use demo::{run_demo, DemoOptions, DemoReport};

/// The crate README's examples run as doctests (the file is inside the crate).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
