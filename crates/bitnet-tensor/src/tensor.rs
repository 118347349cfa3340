//! [`Tensor`]: a typed, shaped view of bytes from a [`Provider`].

use crate::dtype::{DType, Shape, MAX_RANK};
use crate::error::{Error, Result};
use crate::lifecycle;
use crate::storage::{Provider, Storage};
use crate::ternary;
use std::ops::Range;
use std::sync::Arc;

/// A tensor: shape, strides and dtype over shared storage.
///
/// The storage is an [`Allocation`](bitnet_memory::Allocation) of a memory manager (or a
/// `Vec` for the baseline), so a tensor borrows its manager for `'m`. Views (`reshape`,
/// `slice`, `transpose`, `clone`) share the storage through an `Arc`: the bytes live until
/// the last view is dropped. Writing needs sole ownership of the storage: while another
/// view exists, the `*_mut` accessors return [`Error::Shared`].
///
/// ```
/// use bitnet_memory::{MemoryConfig, MemoryManager};
/// use bitnet_tensor::{Provider, Tensor};
///
/// let mm = MemoryManager::new(MemoryConfig::default())?;
/// let p = Provider::Manager(&mm);
/// let t = Tensor::from_f32(&p, &[2, 3], &[1., 2., 3., 4., 5., 6.])?;
/// let col = t.transpose(0, 1)?.slice(0, 1..2)?; // second column, a view
/// assert_eq!(col.to_vec_f32(), vec![2., 5.]);
/// drop(t);
/// assert_eq!(mm.metrics().live_allocations(), 1); // the view keeps the storage alive
/// drop(col);
/// assert_eq!(mm.metrics().live_allocations(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Tensor<'m> {
    storage: Arc<Storage<'m>>,
    dtype: DType,
    shape: Shape,
    strides: [usize; MAX_RANK],
    offset: usize,
}

impl<'m> Tensor<'m> {
    fn with_storage(storage: Storage<'m>, dtype: DType, shape: Shape) -> Self {
        Tensor {
            storage: Arc::new(storage),
            dtype,
            strides: shape.contiguous_strides(),
            shape,
            offset: 0,
        }
    }

    fn check_new(dtype: DType, shape: &Shape) -> Result<()> {
        if dtype == DType::Ternary && shape.dims().last().is_some_and(|d| d % 4 != 0) {
            return Err(Error::InvalidShape {
                shape: *shape,
                reason: "the last dimension of a ternary tensor must be a multiple of 4".into(),
            });
        }
        Ok(())
    }

    /// A contiguous tensor whose contents are unspecified (zeros with [`Provider::Vec`]):
    /// for outputs that an op overwrites whole.
    #[track_caller]
    pub fn new(p: &Provider<'m>, dtype: DType, dims: &[usize]) -> Result<Self> {
        let shape = Shape::new(dims)?;
        Self::check_new(dtype, &shape)?;
        let s = p.buffer(dtype.storage_bytes(shape.numel()))?;
        Ok(Self::with_storage(s, dtype, shape))
    }

    /// A contiguous tensor of zeros (ternary zeros are weights of 0).
    #[track_caller]
    pub fn zeros(p: &Provider<'m>, dtype: DType, dims: &[usize]) -> Result<Self> {
        let shape = Shape::new(dims)?;
        Self::check_new(dtype, &shape)?;
        let s = p.zeroed_buffer(dtype.storage_bytes(shape.numel()))?;
        Ok(Self::with_storage(s, dtype, shape))
    }

    fn check_len(shape: &Shape, len: usize) -> Result<()> {
        if shape.numel() != len {
            return Err(Error::InvalidShape {
                shape: *shape,
                reason: format!("{} elements given for {} places", len, shape.numel()),
            });
        }
        Ok(())
    }

    /// An F32 tensor holding `data` (row-major).
    #[track_caller]
    pub fn from_f32(p: &Provider<'m>, dims: &[usize], data: &[f32]) -> Result<Self> {
        Self::check_len(&Shape::new(dims)?, data.len())?;
        let mut t = Self::new(p, DType::F32, dims)?;
        t.as_f32_mut()?.copy_from_slice(data);
        Ok(t)
    }

    /// An I8 tensor holding `data` (row-major).
    #[track_caller]
    pub fn from_i8(p: &Provider<'m>, dims: &[usize], data: &[i8]) -> Result<Self> {
        Self::check_len(&Shape::new(dims)?, data.len())?;
        let mut t = Self::new(p, DType::I8, dims)?;
        t.as_i8_mut()?.copy_from_slice(data);
        Ok(t)
    }

    /// A packed ternary tensor of `values` (each -1, 0 or +1; the sign of anything else).
    #[track_caller]
    pub fn from_ternary(p: &Provider<'m>, dims: &[usize], values: &[i8]) -> Result<Self> {
        Self::check_len(&Shape::new(dims)?, values.len())?;
        let mut t = Self::new(p, DType::Ternary, dims)?;
        ternary::pack(values, t.as_ternary_mut()?);
        Ok(t)
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

    /// Strides in elements, one per dimension.
    pub fn strides(&self) -> &[usize] {
        &self.strides[..self.shape.rank()]
    }

    /// Offset of the first element in the storage, in elements.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// The storage shared by this tensor's views.
    pub fn storage(&self) -> &Storage<'m> {
        &self.storage
    }

    /// How many tensors (this one included) share the storage.
    pub fn view_count(&self) -> usize {
        Arc::strong_count(&self.storage)
    }

    /// Whether two tensors share storage.
    pub fn shares_storage(&self, other: &Tensor<'_>) -> bool {
        std::ptr::eq(
            Arc::as_ptr(&self.storage).cast::<u8>(),
            Arc::as_ptr(&other.storage).cast::<u8>(),
        )
    }

    /// Whether the elements are laid out row-major without gaps.
    pub fn is_contiguous(&self) -> bool {
        let want = self.shape.contiguous_strides();
        self.shape
            .dims()
            .iter()
            .zip(self.strides().iter().zip(&want))
            .all(|(&d, (&s, &w))| d <= 1 || s == w)
    }

    fn view(&self, shape: Shape, strides: [usize; MAX_RANK], offset: usize) -> Result<Self> {
        let v = Tensor {
            storage: Arc::clone(&self.storage),
            dtype: self.dtype,
            shape,
            strides,
            offset,
        };
        if v.dtype == DType::Ternary {
            let last_ok = shape.rank() == 0
                || (shape.dims()[shape.rank() - 1].is_multiple_of(4)
                    && (strides[shape.rank() - 1] == 1 || shape.dims()[shape.rank() - 1] <= 1));
            let aligned = offset.is_multiple_of(4)
                && v.strides()[..shape.rank().saturating_sub(1)]
                    .iter()
                    .all(|s| s % 4 == 0);
            if !(last_ok && aligned) {
                return Err(Error::InvalidShape {
                    shape,
                    reason: "a ternary view must keep whole bytes: contiguous last dimension, \
                             a multiple of 4 long, starting on a byte"
                        .into(),
                });
            }
        }
        lifecycle::link(self, &v);
        Ok(v)
    }

    /// A view with other dimensions over the same elements (contiguous tensors only).
    pub fn reshape(&self, dims: &[usize]) -> Result<Self> {
        let shape = Shape::new(dims)?;
        if shape.numel() != self.numel() {
            return Err(Error::ShapeMismatch {
                op: "reshape",
                expected: format!("{} elements", self.numel()),
                got: shape,
            });
        }
        if !self.is_contiguous() {
            return Err(self.not_contiguous("reshape"));
        }
        self.view(shape, shape.contiguous_strides(), self.offset)
    }

    /// A view of `range` along `axis`.
    pub fn slice(&self, axis: usize, range: Range<usize>) -> Result<Self> {
        let dims = self.dims();
        if axis >= dims.len() || range.start > range.end || range.end > dims[axis] {
            return Err(Error::InvalidShape {
                shape: self.shape,
                reason: format!("cannot slice axis {axis} to {range:?}"),
            });
        }
        let mut shape = self.shape;
        shape.dims_mut()[axis] = range.end - range.start;
        let offset = self.offset + range.start * self.strides[axis];
        self.view(shape, self.strides, offset)
    }

    /// A view with axes `a` and `b` swapped (not for ternary tensors, whose last axis must
    /// stay contiguous).
    pub fn transpose(&self, a: usize, b: usize) -> Result<Self> {
        let rank = self.shape.rank();
        if a >= rank || b >= rank {
            return Err(Error::InvalidShape {
                shape: self.shape,
                reason: format!("cannot transpose axes {a} and {b}"),
            });
        }
        let mut shape = self.shape;
        shape.dims_mut().swap(a, b);
        let mut strides = self.strides;
        strides.swap(a, b);
        self.view(shape, strides, self.offset)
    }

    /// This tensor if contiguous (a new view of it), else a contiguous copy from `p`.
    #[track_caller]
    pub fn contiguous(&self, p: &Provider<'m>) -> Result<Self> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        match self.dtype {
            DType::F32 => Self::from_f32(p, self.dims(), &self.to_vec_f32()),
            DType::I8 => Self::from_i8(p, self.dims(), &self.to_vec_i8()),
            DType::Ternary => Self::from_ternary(p, self.dims(), &self.to_vec_i8()),
        }
    }

    fn not_contiguous(&self, op: &'static str) -> Error {
        Error::NotContiguous {
            op,
            strides: self.strides().to_vec(),
        }
    }

    fn check(&self, op: &'static str, dtype: DType) -> Result<()> {
        if self.dtype != dtype {
            return Err(Error::DType {
                op,
                expected: dtype,
                got: self.dtype,
            });
        }
        if !self.is_contiguous() {
            return Err(self.not_contiguous(op));
        }
        Ok(())
    }

    fn byte_range(&self) -> Range<usize> {
        let start = self.dtype.storage_bytes(self.offset);
        start..start + self.dtype.storage_bytes(self.numel())
    }

    fn bytes_mut(&mut self, op: &'static str) -> Result<&mut [u8]> {
        let range = self.byte_range();
        let views = Arc::strong_count(&self.storage) - 1;
        match Arc::get_mut(&mut self.storage) {
            Some(s) => Ok(&mut s.bytes_mut()[range]),
            None => Err(Error::Shared { op, views }),
        }
    }

    /// The elements of a contiguous F32 tensor.
    pub fn as_f32(&self) -> Result<&[f32]> {
        self.check("as_f32", DType::F32)?;
        Ok(bytemuck::cast_slice(
            &self.storage.bytes()[self.byte_range()],
        ))
    }

    /// The elements of a contiguous F32 tensor, mutable (sole owner of the storage only).
    pub fn as_f32_mut(&mut self) -> Result<&mut [f32]> {
        self.check("as_f32_mut", DType::F32)?;
        Ok(bytemuck::cast_slice_mut(self.bytes_mut("as_f32_mut")?))
    }

    /// The elements of a contiguous I8 tensor.
    pub fn as_i8(&self) -> Result<&[i8]> {
        self.check("as_i8", DType::I8)?;
        Ok(bytemuck::cast_slice(
            &self.storage.bytes()[self.byte_range()],
        ))
    }

    /// The elements of a contiguous I8 tensor, mutable (sole owner of the storage only).
    pub fn as_i8_mut(&mut self) -> Result<&mut [i8]> {
        self.check("as_i8_mut", DType::I8)?;
        Ok(bytemuck::cast_slice_mut(self.bytes_mut("as_i8_mut")?))
    }

    /// The packed bytes of a contiguous ternary tensor (see [`DType::Ternary`]).
    pub fn as_ternary(&self) -> Result<&[u8]> {
        self.check("as_ternary", DType::Ternary)?;
        Ok(&self.storage.bytes()[self.byte_range()])
    }

    /// The packed bytes of a contiguous ternary tensor, mutable.
    pub fn as_ternary_mut(&mut self) -> Result<&mut [u8]> {
        self.check("as_ternary_mut", DType::Ternary)?;
        self.bytes_mut("as_ternary_mut")
    }

    /// Storage offsets of every element, row-major.
    fn for_each_offset(&self, mut f: impl FnMut(usize)) {
        let dims = self.dims();
        if dims.contains(&0) {
            return;
        }
        let mut idx = [0usize; MAX_RANK];
        loop {
            let off = self.offset
                + idx[..dims.len()]
                    .iter()
                    .zip(self.strides())
                    .map(|(i, s)| i * s)
                    .sum::<usize>();
            f(off);
            let mut ax = dims.len();
            loop {
                if ax == 0 {
                    return;
                }
                ax -= 1;
                idx[ax] += 1;
                if idx[ax] < dims[ax] {
                    break;
                }
                idx[ax] = 0;
            }
        }
    }

    /// The elements of any view (strided or not), row-major, as `f32` (I8 and ternary
    /// values are converted). Allocates a `Vec`: for tests and small tensors.
    pub fn to_vec_f32(&self) -> Vec<f32> {
        let bytes = self.storage.bytes();
        let mut out = Vec::with_capacity(self.numel());
        match self.dtype {
            DType::F32 => {
                let all: &[f32] = bytemuck::cast_slice(&bytes[..bytes.len() / 4 * 4]);
                self.for_each_offset(|o| out.push(all[o]));
            }
            DType::I8 => self.for_each_offset(|o| out.push(bytes[o] as i8 as f32)),
            DType::Ternary => self.for_each_offset(|o| out.push(ternary::get(bytes, o) as f32)),
        }
        out
    }

    /// The elements of an I8 or ternary view, row-major. Panics for F32 (use
    /// [`to_vec_f32`](Self::to_vec_f32)).
    pub fn to_vec_i8(&self) -> Vec<i8> {
        let bytes = self.storage.bytes();
        let mut out = Vec::with_capacity(self.numel());
        match self.dtype {
            DType::F32 => panic!("to_vec_i8 of an F32 tensor"),
            DType::I8 => self.for_each_offset(|o| out.push(bytes[o] as i8)),
            DType::Ternary => self.for_each_offset(|o| out.push(ternary::get(bytes, o))),
        }
        out
    }

    /// Fails unless the shape is `dims` (`None` matches any size).
    pub fn expect_dims(&self, op: &'static str, dims: &[Option<usize>]) -> Result<()> {
        let ok = self.dims().len() == dims.len()
            && self
                .dims()
                .iter()
                .zip(dims)
                .all(|(&d, want)| want.is_none_or(|w| w == d));
        if ok {
            return Ok(());
        }
        let expected = dims
            .iter()
            .map(|d| d.map_or("?".to_string(), |d| d.to_string()))
            .collect::<Vec<_>>()
            .join(", ");
        Err(Error::ShapeMismatch {
            op,
            expected: format!("[{expected}]"),
            got: self.shape,
        })
    }
}

impl std::fmt::Debug for Tensor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tensor")
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .field("strides", &self.strides())
            .field("offset", &self.offset)
            .field("views", &self.view_count())
            .finish()
    }
}
