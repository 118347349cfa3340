//! `--device wgpu` when no adapter matches what wgpu's environment variables ask for: the
//! command exits non-zero and says what it looked for (no GPU needed: a name filter that
//! matches nothing, and a backend set with no adapter on this platform).
#![cfg(feature = "wgpu")]

use std::process::Command;

#[test]
fn gpu_commands_with_no_matching_adapter_fail_naming_what_was_looked_for() {
    let mut settings = vec![("WGPU_ADAPTER_NAME", "no-such-gpu-5e1d", "no-such-gpu-5e1d")];
    if cfg!(target_os = "linux") {
        // Neither is compiled in on Linux.
        settings.push(("WGPU_BACKEND", "metal,dx12", "METAL"));
    }
    for (var, value, named) in settings {
        for args in [
            &["demo", "--device", "wgpu", "--quiet", "--tokens", "2"][..],
            &["bench", "--device", "wgpu", "--quick"],
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_bitnet-mem"))
                .args(args)
                .env(var, value)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "{args:?} with {var}={value}: {stderr}"
            );
            assert!(
                stderr.contains("no wgpu adapter matched") && stderr.contains(named),
                "{args:?} with {var}={value}: {stderr}"
            );
            assert!(stderr.contains("adapters found"), "{stderr}");
        }
    }
}
