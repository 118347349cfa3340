//! `--device`: which device a command runs on, and the GPU it opens.

/// The device a command runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Device {
    /// Host memory.
    #[default]
    Cpu,
    /// A GPU through wgpu (Vulkan, Metal or DX12); needs the `wgpu` feature.
    Wgpu,
}

/// The error for `--device wgpu` in a build without the feature.
pub fn no_wgpu_feature() -> Box<dyn std::error::Error + Send + Sync> {
    "--device wgpu needs bitnet-mem built with the `wgpu` feature: \
     cargo run --release -p bitnet-mem --features wgpu -- ..."
        .into()
}
