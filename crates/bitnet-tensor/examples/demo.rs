//! Runs the demo: `cargo run --release -p bitnet-tensor --example demo -- [MODEL] [TOKENS]
//! [THREADS] [BUDGET_BYTES|none] [both|manager|vec]`, MODEL being `small`, `2b4t` or a scale
//! of 2B4T like `0.25`.
//! (The `bitnet-mem demo` command is the full interface.)

use bitnet_tensor::demo::{run_demo, DemoOptions, Runs};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = DemoOptions::default();
    let result = (|| -> Result<_, Box<dyn std::error::Error>> {
        if let Some(m) = args.first() {
            opts.model = m.parse()?;
        }
        if let Some(t) = args.get(1) {
            opts.tokens = t.parse()?;
        }
        if let Some(t) = args.get(2) {
            opts.threads = t.parse()?;
        }
        if let Some(b) = args.get(3).filter(|b| *b != "none") {
            opts.budget = Some(b.parse()?);
        }
        if let Some(r) = args.get(4) {
            opts.runs = match r.as_str() {
                "manager" => Runs::ManagerOnly,
                "vec" => Runs::VecOnly,
                _ => Runs::Both,
            };
        }
        Ok(run_demo(&opts)?)
    })();
    match result {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
