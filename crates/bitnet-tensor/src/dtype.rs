//! Element types and shapes.

use crate::error::{Error, Result};
use std::fmt;

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 8-bit signed integer (quantized activations).
    I8,
    /// Ternary weight in {-1, 0, +1}, packed 4 per byte (2 bits each, little end first):
    /// `00` = 0, `01` = +1, `10` = -1. The last dimension must be a multiple of 4.
    Ternary,
}

impl DType {
    /// Bytes needed for `numel` elements.
    pub fn storage_bytes(self, numel: usize) -> usize {
        match self {
            DType::F32 => numel * 4,
            DType::I8 => numel,
            DType::Ternary => numel.div_ceil(4),
        }
    }
}

/// Largest rank a tensor may have.
pub const MAX_RANK: usize = 4;

/// Dimensions of a tensor (rank 0 to [`MAX_RANK`]), kept inline: no heap allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Shape {
    dims: [usize; MAX_RANK],
    rank: usize,
}

impl Shape {
    /// A shape from its dimensions.
    pub fn new(dims: &[usize]) -> Result<Self> {
        if dims.len() > MAX_RANK {
            let mut s = Shape {
                rank: MAX_RANK,
                ..Shape::default()
            };
            s.dims.copy_from_slice(&dims[..MAX_RANK]);
            return Err(Error::InvalidShape {
                shape: s,
                reason: format!("rank {} over the maximum of {MAX_RANK}", dims.len()),
            });
        }
        let mut s = Shape {
            dims: [0; MAX_RANK],
            rank: dims.len(),
        };
        s.dims[..dims.len()].copy_from_slice(dims);
        Ok(s)
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.rank]
    }

    pub(crate) fn dims_mut(&mut self) -> &mut [usize] {
        &mut self.dims[..self.rank]
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.dims().iter().product()
    }

    /// Row-major strides of this shape, in elements.
    pub fn contiguous_strides(&self) -> [usize; MAX_RANK] {
        let mut st = [0; MAX_RANK];
        let mut acc = 1;
        for i in (0..self.rank).rev() {
            st[i] = acc;
            acc *= self.dims[i];
        }
        st
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.dims())
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Shape{:?}", self.dims())
    }
}
