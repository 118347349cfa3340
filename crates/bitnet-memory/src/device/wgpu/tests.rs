//! The wgpu backend on its own (no pool): adapters, chunks, limits, submissions, errors.
//! They need an adapter; without one they skip (printing why), unless
//! `BITNET_REQUIRE_GPU=1`, when they fail.

use super::{WgpuBackend, WgpuOptions};
use crate::device::{DeviceBackend, DeviceRange, Submissions};
use crate::error::MemoryError;

/// A backend on the default adapter, or `None` (with the reason printed) when there is
/// none and the GPU is not required.
fn gpu() -> Option<WgpuBackend> {
    match WgpuBackend::new(&WgpuOptions::default()) {
        Ok(g) => Some(g),
        Err(e) if std::env::var("BITNET_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!("BITNET_REQUIRE_GPU=1 but no GPU: {e}")
        }
        Err(e) => {
            eprintln!("skipped: no GPU adapter ({e}); BITNET_REQUIRE_GPU=1 makes this fail");
            None
        }
    }
}

#[test]
fn no_matching_adapter_is_an_error_that_says_what_was_looked_for() {
    let options = WgpuOptions {
        name_filter: Some("no-such-gpu-7f3a".to_string()),
        ..WgpuOptions::default()
    };
    let e = WgpuBackend::new(&options).unwrap_err();
    let MemoryError::DeviceUnavailable { what } = &e else {
        panic!("{e}")
    };
    assert!(what.contains("no-such-gpu-7f3a"), "{what}");
    assert!(what.contains("backends tried"), "{what}");
    assert!(what.contains("adapters found"), "{what}");
    assert!(!e.is_retryable());
}

#[test]
fn options_from_the_environment_narrow_the_defaults() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    let o = WgpuOptions::from_vars(vars(&[]));
    assert_eq!(o.backends, WgpuOptions::default().backends);
    assert_eq!(o.name_filter, None);
    let o = WgpuOptions::from_vars(vars(&[
        ("WGPU_BACKEND", "metal,dx12"),
        ("WGPU_ADAPTER_NAME", "llvmpipe"),
        ("WGPU_POWER_PREF", "LOW"),
    ]));
    assert_eq!(o.backends, wgpu::Backends::METAL | wgpu::Backends::DX12);
    assert_eq!(o.name_filter.as_deref(), Some("llvmpipe"));
    assert_eq!(o.power_preference, wgpu::PowerPreference::LowPower);
}

#[test]
fn a_backend_set_with_no_adapter_here_is_an_error_naming_it() {
    // Metal and DX12 are not compiled in on Linux: nothing to find, whatever the driver.
    if cfg!(not(target_os = "linux")) {
        return;
    }
    let options = WgpuOptions {
        backends: wgpu::Backends::METAL | wgpu::Backends::DX12,
        ..WgpuOptions::default()
    };
    let e = WgpuBackend::new(&options).unwrap_err();
    let MemoryError::DeviceUnavailable { what } = &e else {
        panic!("{e}")
    };
    assert!(
        what.contains("backends tried") && what.contains("METAL"),
        "{what}"
    );
    assert!(what.contains("adapters found: none"), "{what}");
}

#[test]
fn a_name_filter_picks_the_adapter_whatever_the_case() {
    let Some(g) = gpu() else { return };
    let name = g.adapter_info().name.clone();
    let options = WgpuOptions {
        name_filter: Some(name.to_uppercase()),
        power_preference: wgpu::PowerPreference::LowPower,
        ..WgpuOptions::default()
    };
    let again = WgpuBackend::new(&options).unwrap();
    assert_eq!(again.adapter_info().name, name);
    assert_eq!(
        again.limits(),
        g.limits(),
        "the adapter's own limits, both times"
    );
}

#[test]
fn chunks_are_tagged_buffers_the_host_cannot_see() {
    let Some(g) = gpu() else { return };
    assert!(!g.host_visible());
    assert!(g.decommit().is_none() && g.page_mover().is_none());
    assert!(g.submissions().is_some());
    let c = g.allocate_chunk(1 << 20, 4096).unwrap();
    assert_eq!(c.host, None);
    assert_eq!(c.size, 1 << 20);
    assert_eq!(c.handle.0 >> 48, 0x5747, "{:#x}", c.handle.0);
    assert_eq!((g.buffer_count(), g.buffer_bytes()), (1, 1 << 20));
    let r = g
        .binding(&DeviceRange {
            chunk: c.handle,
            offset: 256,
            len: 1000,
        })
        .unwrap();
    assert_eq!((r.offset, r.size, r.binding_size()), (256, 1000, 1000));
    assert_eq!(r.buffer.size(), 1 << 20);
    g.release_chunk(c);
    assert_eq!((g.buffer_count(), g.buffer_bytes()), (0, 0));
    // A released chunk (or another device's) has no binding.
    let e = g
        .binding(&DeviceRange {
            chunk: c.handle,
            offset: 0,
            len: 4,
        })
        .unwrap_err();
    assert!(matches!(e, MemoryError::InvalidDeviceAccess { .. }), "{e}");
}

#[test]
fn the_pool_sees_the_adapters_limits() {
    let Some(g) = gpu() else { return };
    let w = g.limits().clone();
    let d = DeviceBackend::limits(&g);
    assert_eq!(
        d.min_align,
        (w.min_storage_buffer_offset_alignment as usize).max(4)
    );
    assert!(d.min_align.is_power_of_two());
    assert_eq!(d.max_block as u64, w.max_storage_buffer_binding_size);
    assert!(d.max_chunk as u64 <= w.max_buffer_size);
    assert!(w.max_buffer_size - (d.max_chunk as u64) < 4096);
    assert_eq!(d.max_block_name, "max_storage_buffer_binding_size");
    assert_eq!(d.max_chunk_name, "max_buffer_size");
}

#[test]
fn a_buffer_the_device_refuses_is_an_error_not_a_panic() {
    let Some(g) = gpu() else { return };
    // Above max_buffer_size: wgpu raises a validation error, which the error scopes
    // catch (wgpu's default handler would panic).
    let too_big = usize::try_from(g.limits().max_buffer_size)
        .unwrap_or(usize::MAX)
        .saturating_add(4096);
    let e = g.allocate_chunk(too_big, 4096).unwrap_err();
    assert!(!e.lost);
    assert!(e.reason.contains("refused a buffer"), "{e}");
    assert_eq!(g.buffer_count(), 0);
    // The device still works.
    let c = g.allocate_chunk(4096, 4096).unwrap();
    g.release_chunk(c);
}

#[test]
fn submissions_are_counted_and_finish() {
    let Some(g) = gpu() else { return };
    assert_eq!((g.submitted(), g.completed()), (0, 0));
    g.submit([]);
    g.submit([]);
    assert_eq!(g.submitted(), 2);
    g.wait_idle().unwrap();
    assert_eq!(g.completed(), 2);
    // A submission made on the queue directly, then noted.
    g.queue().submit([]);
    assert_eq!(g.note_submitted(), 3);
    g.wait_idle().unwrap();
    assert_eq!(g.completed(), 3);
}

#[test]
fn a_lost_device_refuses_chunks_for_good() {
    let Some(g) = gpu() else { return };
    g.device().destroy();
    let _ = g.device().poll(wgpu::PollType::Poll);
    assert!(g.lost().is_some(), "the lost callback ran");
    let e = g.allocate_chunk(4096, 4096).unwrap_err();
    assert!(e.lost, "{e}");
    assert!(e.reason.contains("lost"), "{e}");
}
