//! Picking an adapter and opening a device on it, with the adapter's own limits. When
//! nothing matches, the error says what was looked for and what was there.
#![deny(unsafe_code)]

use super::WgpuOptions;
use crate::error::{MemoryError, Result};

/// Opens a device and its queue on the adapter `options` pick.
pub(super) fn open(options: &WgpuOptions) -> Result<(wgpu::Device, wgpu::Queue)> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: options.backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapters = pollster::block_on(instance.enumerate_adapters(options.backends));
    let seen: Vec<String> = adapters.iter().map(|a| describe(&a.get_info())).collect();
    let Some(adapter) = pick(adapters, options) else {
        return Err(MemoryError::DeviceUnavailable {
            what: format!(
                "no wgpu adapter matched: {}; adapters found: {}",
                looked_for(options),
                if seen.is_empty() {
                    "none (is a Vulkan, Metal or DX12 driver installed?)".to_string()
                } else {
                    seen.join(", ")
                }
            ),
        });
    };
    let info = adapter.get_info();
    let descriptor = wgpu::DeviceDescriptor {
        label: Some("bitnet-memory"),
        required_features: wgpu::Features::empty(),
        // The adapter's own limits: the largest buffers and bindings it can make.
        required_limits: adapter.limits(),
        ..wgpu::DeviceDescriptor::default()
    };
    pollster::block_on(adapter.request_device(&descriptor)).map_err(|e| {
        MemoryError::DeviceUnavailable {
            what: format!("adapter {} refused a device: {e}", describe(&info)),
        }
    })
}

/// What was looked for, for the error: backends asked and compiled in, the name filter,
/// fallback only.
fn looked_for(options: &WgpuOptions) -> String {
    format!(
        "backends tried {:?} (compiled in: {:?}), name filter {}, fallback adapter only: {}",
        options.backends,
        wgpu::Instance::enabled_backend_features(),
        options
            .name_filter
            .as_deref()
            .map_or("none".to_string(), |f| format!("{f:?}")),
        options.force_fallback_adapter
    )
}

fn describe(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
}

/// The adapter the options pick among `adapters`: those passing the name filter (and
/// the fallback requirement), best by power preference, first on ties.
fn pick(adapters: Vec<wgpu::Adapter>, options: &WgpuOptions) -> Option<wgpu::Adapter> {
    let filter = options.name_filter.as_ref().map(|f| f.to_lowercase());
    adapters
        .into_iter()
        .enumerate()
        .filter(|(_, a)| {
            let info = a.get_info();
            filter
                .as_ref()
                .is_none_or(|f| info.name.to_lowercase().contains(f))
                && (!options.force_fallback_adapter || info.device_type == wgpu::DeviceType::Cpu)
        })
        .min_by_key(|(i, a)| (rank(a.get_info().device_type, options.power_preference), *i))
        .map(|(_, a)| a)
}

/// Lower is better.
fn rank(kind: wgpu::DeviceType, preference: wgpu::PowerPreference) -> u8 {
    use wgpu::DeviceType::*;
    match preference {
        wgpu::PowerPreference::HighPerformance => match kind {
            DiscreteGpu => 0,
            IntegratedGpu => 1,
            VirtualGpu => 2,
            Cpu => 3,
            Other => 4,
        },
        wgpu::PowerPreference::LowPower => match kind {
            IntegratedGpu => 0,
            DiscreteGpu => 1,
            VirtualGpu => 2,
            Cpu => 3,
            Other => 4,
        },
        wgpu::PowerPreference::None => 0,
    }
}
