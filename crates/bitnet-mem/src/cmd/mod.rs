//! One module per subcommand of `bitnet-mem`.

pub mod bench;
#[cfg(feature = "wgpu")]
pub mod bench_gpu;
pub mod demo;
pub mod device;
pub mod leakcheck;
pub mod replay;
pub mod report;
pub mod resident;

/// What a subcommand returns.
pub type CmdResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The most threads a command starts for one run: more is a typo, not a benchmark (each
/// thread replays a whole stream, and the machine has a few cores).
pub const MAX_THREADS: usize = 1024;

/// A count that must be 1 or more (`--repeats`, `--scale`, `--seeds`, ...): 0 would run
/// nothing, divide by zero or count nothing, so it is refused with a reason instead of
/// being read as 1.
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("0 is not allowed: it must be 1 or more".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number: {e}")),
    }
}

/// [`at_least_one`] for 64-bit counts (`--seeds`).
pub fn at_least_one_u64(s: &str) -> Result<u64, String> {
    at_least_one(s).map(|n| n as u64)
}

/// A thread count: 1 to [`MAX_THREADS`].
pub fn thread_count(s: &str) -> Result<usize, String> {
    match at_least_one(s)? {
        n if n > MAX_THREADS => Err(format!(
            "{n} threads is more than this command runs ({MAX_THREADS} at the most)"
        )),
        n => Ok(n),
    }
}
