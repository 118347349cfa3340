//! Renders a report: `cargo run -p bitnet-report --example render -- INPUT OUT.html
//! [--replay] [--perfetto OUT.json]`. INPUT is a trace or a snapshot JSON. The
//! `bitnet-mem report` command offers the same through the CLI.

use bitnet_report::{render_html, render_perfetto, ReplayOptions, ReportData, ReportOptions};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(input), Some(out)) = (args.first(), args.get(1)) else {
        return Err("usage: render INPUT OUT.html [--replay] [--perfetto OUT.json]".into());
    };
    let mut opts = ReportOptions::default();
    if args.iter().any(|a| a == "--replay") {
        opts = opts.replay(ReplayOptions::default());
    }
    let start = Instant::now();
    let data = ReportData::load(input, &opts)?;
    let built = start.elapsed();
    let html = render_html(&data);
    std::fs::write(out, &html)?;
    println!(
        "{out}: {} bytes, {} samples drawn of {} events; built in {built:.2?}, total {:.2?}",
        html.len(),
        data.timeline.samples.len(),
        data.timeline.events,
        start.elapsed()
    );
    if let Some(i) = args.iter().position(|a| a == "--perfetto") {
        let path = args.get(i + 1).ok_or("--perfetto needs a path")?;
        std::fs::write(path, render_perfetto(&data))?;
        println!("{path}: perfetto JSON");
    }
    Ok(())
}
