//! The `bitnet-mem` command.
fn main() {}
