//! Embedding lookup.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::storage::Provider;
use crate::tensor::Tensor;

/// Rows `ids` of an F32 `[vocab, hidden]` table, as a new `[ids.len(), hidden]` tensor.
#[track_caller]
pub fn embedding<'m>(table: &Tensor<'_>, ids: &[u32], p: &Provider<'m>) -> Result<Tensor<'m>> {
    table.expect_dims("embedding", &[None, None])?;
    let (vocab, h) = (table.dims()[0], table.dims()[1]);
    let t = table.as_f32()?;
    let mut y = Tensor::new(p, DType::F32, &[ids.len(), h])?;
    let out = y.as_f32_mut()?;
    for (i, &id) in ids.iter().enumerate() {
        let id = id as usize;
        if id >= vocab {
            return Err(Error::OutOfRange {
                what: "token id",
                index: id,
                bound: vocab,
            });
        }
        out[i * h..(i + 1) * h].copy_from_slice(&t[id * h..(id + 1) * h]);
    }
    Ok(y)
}
