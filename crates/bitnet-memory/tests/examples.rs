//! The examples as a user runs them: without arguments they print their usage and exit
//! non-zero; with a small trace they run to the end.

use std::path::PathBuf;
use std::process::Command;

/// The example's binary, beside this test's (`target/<profile>/examples/`); built with
/// the running cargo when `cargo test` was told to build only this test.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join("examples").join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut c = Command::new(cargo);
        c.args(["build", "-q", "-p", "bitnet-memory", "--example", name]);
        if dir.file_name().is_some_and(|p| p == "release") {
            c.arg("--release");
        }
        let st = c.status().expect("run cargo");
        assert!(st.success(), "building example {name} failed");
    }
    path
}

#[test]
fn replay_ratio_without_arguments_prints_usage_and_fails() {
    let out = Command::new(example("replay_ratio")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(
        err.contains("usage: replay_ratio TRACE.csv"),
        "stderr: {err}"
    );
    assert!(!err.contains("panicked"), "stderr: {err}");
}

#[test]
fn replay_ratio_names_a_bad_line_and_fails() {
    let dir = std::env::temp_dir().join(format!("bitnet-ex-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        "op,id,size,align,thread,t_ns\na,1,100,16,0,0\nx,2,1,1,0,1\n",
    )
    .unwrap();
    let out = Command::new(example("replay_ratio"))
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains("line 3"), "stderr: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn replay_ratio_runs_a_small_trace() {
    let dir = std::env::temp_dir().join(format!("bitnet-ex-ok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.csv");
    std::fs::write(
        &good,
        "op,id,size,align,thread,t_ns\na,1,100000,16,0,0\na,2,5000,64,0,1\nf,1,0,0,0,2\nf,2,0,0,0,3\n",
    )
    .unwrap();
    let out = Command::new(example("replay_ratio"))
        .args([good.to_str().unwrap(), "fast"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("4 events"), "stdout: {text}");
    let _ = std::fs::remove_dir_all(&dir);
}
