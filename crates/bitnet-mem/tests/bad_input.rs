//! Every bad argument and bad file the command meets gets a clear error and a non-zero
//! exit, never a panic, a silent default or a table of inf and NaN. Each row drives the
//! binary and checks the exit status and the message.

use std::path::PathBuf;
use std::process::Output;

/// A file in the temporary folder, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, bytes: &[u8]) -> Self {
        let path =
            std::env::temp_dir().join(format!("bitnet-mem-bad-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn run(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_bitnet-mem"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `args`, checks it failed with exit status `code` and that its standard error
/// contains every one of `expected`; returns standard output and standard error.
fn refused(args: &[&str], code: i32, expected: &[&str]) -> (String, String) {
    let out = run(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: exit {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    for e in expected {
        assert!(stderr.contains(e), "{args:?}: no {e:?} in\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
    assert!(
        !stdout.contains("NaN") && !stdout.contains("inf "),
        "{args:?}:\n{stdout}"
    );
    (stdout, stderr)
}

/// A command's own error (exit 1); a bad argument is clap's (exit 2).
const ERROR: i32 = 1;
const USAGE: i32 = 2;

const HEADER: &str = "op,id,size,align,thread,t_ns\n";

/// `replay` quickly: one timed run, no warm-up, no child processes.
fn replay(file: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["replay", "--repeats", "1", "--warmup", "0", "--no-resident"]
        .map(String::from)
        .to_vec();
    a.extend(extra.iter().map(|s| s.to_string()));
    a.push(file.to_string());
    a
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn an_empty_trace_and_a_header_alone_have_nothing_to_replay() {
    let empty = TempFile::new("empty.csv", b"");
    refused(
        &strs(&replay(empty.path(), &[])),
        ERROR,
        &["the trace has no events (the file is empty)", empty.path()],
    );
    let header = TempFile::new("header.csv", format!("{HEADER}# a comment\n\n").as_bytes());
    refused(
        &strs(&replay(header.path(), &[])),
        ERROR,
        &["the trace has no events (only a header, blank lines or comments)"],
    );
    // Nor can `bench` replay it.
    refused(
        &[
            "bench",
            "--quick",
            "--no-resident",
            "--workload",
            "replay",
            "--trace",
            header.path(),
        ],
        ERROR,
        &["the trace has no events", "nothing to replay"],
    );
    // The report has nothing to draw either, in either format.
    for format in ["html", "perfetto"] {
        for f in [&empty, &header] {
            let out = f.0.with_extension("out");
            refused(
                &[
                    "report",
                    f.path(),
                    "-o",
                    out.to_str().unwrap(),
                    "--format",
                    format,
                ],
                ERROR,
                &["the trace has no events", "nothing to report"],
            );
            assert!(!out.exists(), "a report of nothing was written");
        }
    }
}

#[test]
fn garbage_and_a_missing_file_name_the_file_and_the_line() {
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    bytes.extend_from_slice(b"\n\x00\xff,,,\n");
    let garbage = TempFile::new("garbage.csv", &bytes);
    refused(
        &strs(&replay(garbage.path(), &[])),
        ERROR,
        &[garbage.path(), "line 1:"],
    );
    refused(
        &strs(&replay("/nonexistent/bitnet-mem-trace.csv", &[])),
        ERROR,
        &["/nonexistent/bitnet-mem-trace.csv"],
    );
}

#[test]
fn a_10_mb_field_is_cut_in_the_message() {
    let field = "7".repeat(10_000_000);
    let big = TempFile::new(
        "big.csv",
        format!("{HEADER}a,1,{field},16,0,0\n").as_bytes(),
    );
    let (_, stderr) = refused(
        &strs(&replay(big.path(), &[])),
        ERROR,
        &[
            "line 2: malformed field `size`",
            "cut: 10000000 bytes in all",
        ],
    );
    assert!(stderr.len() < 1000, "{} bytes of message", stderr.len());
}

/// A trace asking for `size` bytes: valid by the format (up to `isize::MAX`), so every
/// allocator is asked and each one's answer is printed; no allocator can serve it, so
/// the command fails after the table.
fn every_allocator_answers(size: u64) {
    let t = TempFile::new(
        &format!("huge-{size}.csv"),
        format!("{HEADER}a,1,8,8,0,0\na,2,{size},16,0,1\nf,2,0,0,0,2\nf,1,0,0,0,3\n").as_bytes(),
    );
    let (stdout, stderr) = refused(
        &strs(&replay(t.path(), &[])),
        ERROR,
        &["no allocator could replay the trace"],
    );
    for a in ["bitnet-memory", "glibc", "mimalloc", "jemalloc", "limit"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{a} could not run replay x1: ")))
            .unwrap_or_else(|| panic!("no reason for {a} in\n{stdout}\n{stderr}"));
        // The pre-filled limit refuses before the run; the others at the second event,
        // either refusing or, where they overcommit, served but never touched.
        let at = if a == "limit" {
            "before the run: refused"
        } else {
            "at event 2: "
        };
        assert!(line.contains(at), "{line}");
        // The limit names its pre-filled region (the size class), the others the request.
        if a != "limit" {
            assert!(line.contains(&format!("{size} B")), "{line}");
        }
        let row = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(a))
            .unwrap_or_else(|| panic!("no row for {a}"));
        assert_eq!(row.split_whitespace().nth(1), Some("refused"), "{row}");
    }
}

#[test]
fn a_block_of_1_tib_is_refused_by_each_allocator_without_a_panic() {
    every_allocator_answers(1 << 40);
}

#[test]
fn a_block_of_isize_max_is_refused_by_each_allocator_without_a_panic() {
    every_allocator_answers(isize::MAX as u64);
}

#[test]
fn zero_and_absurd_counts_are_refused_before_anything_runs() {
    let ok = TempFile::new("ok.csv", format!("{HEADER}a,1,8,8,0,0\n").as_bytes());
    let cases: &[(&[&str], &str)] = &[
        (&["replay", "--threads", "0", ok.path()], "0 is not allowed"),
        (
            &["replay", "--threads", "5000", ok.path()],
            "1024 at the most",
        ),
        (
            &["replay", "--threads", "two", ok.path()],
            "not a whole number",
        ),
        (&["replay", "--repeats", "0", ok.path()], "0 is not allowed"),
        (
            &["replay", "--cold-runs", "0", ok.path()],
            "0 is not allowed",
        ),
        (&["bench", "--quick", "--threads", "0"], "0 is not allowed"),
        (
            &["bench", "--quick", "--threads", "99999"],
            "1024 at the most",
        ),
        (&["bench", "--quick", "--repeats", "0"], "0 is not allowed"),
        (
            &["bench", "--quick", "--cold-runs", "0"],
            "0 is not allowed",
        ),
        (&["bench", "--quick", "--scale", "0"], "1 or more"),
        (&["demo", "--tokens", "0"], "0 is not allowed"),
        (&["demo", "--threads", "0"], "0 is not allowed"),
        (&["demo", "--history", "0"], "0 is not allowed"),
        (&["demo", "--budget", "0"], "size must be positive"),
        (&["leakcheck", "--seeds", "0"], "0 is not allowed"),
        (&["leakcheck", "--steps", "0"], "0 is not allowed"),
    ];
    for (args, why) in cases {
        let (_, stderr) = refused(args, USAGE, &[why]);
        // clap names the option it refused.
        let flag = args.iter().rev().find(|a| a.starts_with("--")).unwrap();
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
    // Counts each fine alone whose sum has no end.
    let max = u64::MAX.to_string();
    refused(
        &["leakcheck", "--first-seed", &max, "--seeds", "2"],
        ERROR,
        &["runs past the last seed"],
    );
}
