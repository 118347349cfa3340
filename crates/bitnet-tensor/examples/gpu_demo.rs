//! Runs the demo on the GPU (feature `wgpu`): `cargo run --release -p bitnet-tensor
//! --features wgpu --example gpu_demo -- [MODEL] [TOKENS]`, MODEL being `small`, `2b4t`
//! or a scale of 2B4T like `0.25`. Says why and exits with 1 when there is no GPU.

#[cfg(feature = "wgpu")]
fn main() {
    use bitnet_tensor::demo::DemoOptions;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = (|| -> Result<_, Box<dyn std::error::Error>> {
        let mut opts = DemoOptions::default();
        if let Some(m) = args.first() {
            opts.model = m.parse()?;
        }
        if let Some(t) = args.get(1) {
            opts.tokens = t.parse()?;
        }
        Ok(bitnet_tensor::gpu::run_gpu_demo(&opts)?)
    })();
    match result {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(not(feature = "wgpu"))]
fn main() {
    eprintln!("built without the `wgpu` feature: no GPU demo");
    std::process::exit(1);
}
