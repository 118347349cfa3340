//! `bitnet-mem demo`: a BitNet b1.58 decoder generating tokens on the memory manager, then
//! the same run on plain `Vec` buffers, and the memory report.

use super::CmdResult;
use bitnet_tensor::demo::{run_demo, DemoOptions, ModelSize};

/// Options of `bitnet-mem demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model: `small` (runs in seconds), `2b4t` (the BitNet b1.58 2B4T shapes, about
    /// 1.8 GiB), or a scale of 2B4T such as `0.25`.
    #[arg(long, default_value = "small")]
    pub model: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 64)]
    pub tokens: usize,
    /// Threads the ops run on (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Memory budget of the manager, e.g. `512M`, `2G` or bytes.
    #[arg(long, value_parser = parse_bytes)]
    pub budget: Option<usize>,
    /// Seed of the weights and the prompt.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// Parses `123`, `64K`, `512M`, `2G` (binary units) into bytes.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = s[i..].to_ascii_uppercase();
            let mul = match unit.trim_end_matches("IB").trim_end_matches('B') {
                "" => 1usize,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                _ => return Err(format!("unknown unit in {s:?} (use K, M, G or T)")),
            };
            (&s[..i], mul)
        }
        None => (s, 1),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a size: {s:?}"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("size must be positive: {s:?}"));
    }
    Ok((v * mul as f64) as usize)
}

/// Runs the demo and prints its report.
pub fn run(a: Args) -> CmdResult {
    let model: ModelSize = a.model.parse()?;
    let mut opts = DemoOptions {
        model,
        tokens: a.tokens,
        budget: a.budget,
        seed: a.seed,
        progress: !a.quiet,
        ..DemoOptions::default()
    };
    if let Some(t) = a.threads {
        opts.threads = t;
    }
    let report = run_demo(&opts)?;
    println!("{report}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_bytes("123"), Ok(123));
        assert_eq!(parse_bytes("64K"), Ok(64 << 10));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("1.5G"), Ok(3 << 29));
        assert!(parse_bytes("12X").is_err());
        assert!(parse_bytes("-3M").is_err());
        assert!(parse_bytes("M").is_err());
    }
}
