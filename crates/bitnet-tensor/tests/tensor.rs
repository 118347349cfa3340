//! Tensor storage, views, typed access and errors.

use bitnet_memory::{MemoryConfig, MemoryError, MemoryManager};
use bitnet_tensor::{DType, Error, Provider, Tensor};

fn mm() -> MemoryManager {
    MemoryManager::new(MemoryConfig::default()).unwrap()
}

#[test]
fn storage_comes_from_the_manager_and_is_freed_with_the_last_view() {
    let mm = mm();
    let p = Provider::Manager(&mm);
    let t = Tensor::zeros(&p, DType::F32, &[4, 8]).unwrap();
    assert!(t.storage().is_pooled());
    assert_eq!(mm.metrics().live_bytes(), 4 * 8 * 4);
    let v = t.reshape(&[8, 4]).unwrap().slice(0, 2..6).unwrap();
    assert!(v.shares_storage(&t));
    assert_eq!(v.view_count(), 2);
    drop(t);
    assert_eq!(
        mm.metrics().live_allocations(),
        1,
        "the view keeps the storage"
    );
    drop(v);
    assert_eq!(mm.metrics().live_allocations(), 0);
}

#[test]
fn pool_buffers_are_cache_line_aligned() {
    let mm = mm();
    let t = Tensor::new(&Provider::Manager(&mm), DType::I8, &[3, 5]).unwrap();
    assert_eq!(t.storage().bytes().as_ptr() as usize % 64, 0);
}

#[test]
fn views_read_the_right_elements() {
    let mm = mm();
    let p = Provider::Manager(&mm);
    let data: Vec<f32> = (0..24).map(|i| i as f32).collect();
    let t = Tensor::from_f32(&p, &[2, 3, 4], &data).unwrap();
    // t[1, :, 2]
    let v = t.slice(0, 1..2).unwrap().slice(2, 2..3).unwrap();
    assert_eq!(v.to_vec_f32(), vec![14., 18., 22.]);
    let tr = t.reshape(&[6, 4]).unwrap().transpose(0, 1).unwrap();
    assert_eq!(tr.dims(), &[4, 6]);
    assert!(!tr.is_contiguous());
    assert_eq!(
        tr.slice(0, 1..2).unwrap().to_vec_f32(),
        vec![1., 5., 9., 13., 17., 21.]
    );
    let c = tr.contiguous(&p).unwrap();
    assert!(c.is_contiguous() && !c.shares_storage(&t));
    assert_eq!(c.as_f32().unwrap()[..6], [0., 4., 8., 12., 16., 20.]);
    // A contiguous slice gives a typed slice at its offset.
    assert_eq!(t.slice(0, 1..2).unwrap().as_f32().unwrap()[0], 12.0);
}

#[test]
fn errors_say_what_is_wrong() {
    let mm = mm();
    let p = Provider::Manager(&mm);
    let t = Tensor::zeros(&p, DType::F32, &[2, 3]).unwrap();
    assert!(matches!(
        t.reshape(&[4, 2]),
        Err(Error::ShapeMismatch { op: "reshape", .. })
    ));
    let tr = t.transpose(0, 1).unwrap();
    assert!(matches!(tr.reshape(&[6]), Err(Error::NotContiguous { .. })));
    assert!(matches!(tr.as_f32(), Err(Error::NotContiguous { .. })));
    assert!(matches!(
        t.as_i8(),
        Err(Error::DType {
            expected: DType::I8,
            got: DType::F32,
            ..
        })
    ));
    assert!(matches!(t.slice(1, 2..4), Err(Error::InvalidShape { .. })));
    assert!(matches!(t.transpose(0, 2), Err(Error::InvalidShape { .. })));
    assert!(Tensor::zeros(&p, DType::F32, &[1, 1, 1, 1, 1]).is_err());
    assert!(Tensor::from_f32(&p, &[2, 2], &[1.0; 3]).is_err());
    let msg = t.reshape(&[4, 2]).unwrap_err().to_string();
    assert!(msg.contains("reshape") && msg.contains("[4, 2]"), "{msg}");
}

#[test]
fn writing_needs_sole_ownership() {
    let mm = mm();
    let p = Provider::Manager(&mm);
    let mut t = Tensor::zeros(&p, DType::F32, &[4]).unwrap();
    let view = t.clone();
    assert!(matches!(
        t.as_f32_mut(),
        Err(Error::Shared { views: 1, .. })
    ));
    drop(view);
    t.as_f32_mut().unwrap()[2] = 5.0;
    assert_eq!(t.to_vec_f32(), vec![0., 0., 5., 0.]);
}

#[test]
fn ternary_packs_four_per_byte_and_round_trips() {
    let mm = mm();
    let p = Provider::Manager(&mm);
    let vals: Vec<i8> = (0..32)
        .map(|i| [(-1i8), 0, 1, 1, 0, -1, -1, 0][i % 8])
        .collect();
    let t = Tensor::from_ternary(&p, &[4, 8], &vals).unwrap();
    assert_eq!(t.storage().len(), 8, "2 bits per weight");
    assert_eq!(t.as_ternary().unwrap().len(), 8);
    assert_eq!(t.to_vec_i8(), vals);
    // Row slices stay whole bytes.
    let r = t.slice(0, 1..3).unwrap();
    assert_eq!(r.to_vec_i8(), vals[8..24].to_vec());
    assert_eq!(r.as_ternary().unwrap(), &t.as_ternary().unwrap()[2..6]);
    // Views that would split bytes are refused.
    assert!(t.slice(1, 1..5).is_err());
    assert!(t.transpose(0, 1).is_err());
    assert!(Tensor::zeros(&p, DType::Ternary, &[2, 6]).is_err());
    // Codes: 00 = 0, 01 = +1, 10 = -1, first weight in the low bits.
    let one = Tensor::from_ternary(&p, &[4], &[1, -1, 0, 1]).unwrap();
    assert_eq!(one.as_ternary().unwrap(), &[0b01_00_10_01]);
}

#[test]
fn budget_errors_wrap_the_memory_error() {
    let mm = MemoryManager::new(MemoryConfig::default().budget(8 << 20)).unwrap();
    let p = Provider::Manager(&mm);
    let err = Tensor::zeros(&p, DType::F32, &[4 << 20]).unwrap_err();
    assert!(
        matches!(err, Error::Memory(MemoryError::BudgetExceeded { requested, .. }) if requested == 16 << 20),
        "{err}"
    );
}

#[test]
fn vec_provider_behaves_the_same() {
    let p = Provider::Vec;
    let t = Tensor::from_f32(&p, &[2, 2], &[1., 2., 3., 4.]).unwrap();
    assert!(!t.storage().is_pooled());
    assert_eq!(
        t.transpose(0, 1).unwrap().to_vec_f32(),
        vec![1., 3., 2., 4.]
    );
    let z = Tensor::zeros(&p, DType::I8, &[3]).unwrap();
    assert_eq!(z.as_i8().unwrap(), &[0, 0, 0]);
}
