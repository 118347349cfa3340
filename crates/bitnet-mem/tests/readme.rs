//! The root README's Rust examples are tested: each block is, character for character, a
//! block of a crate README that its crate runs as doctests (`#[doc =
//! include_str!("../README.md")]` in its lib.rs). So is every other crate README's block.
//! In a packaged crate (no workspace around it) there is nothing to compare: skipped.

use std::path::{Path, PathBuf};

/// The ```rust blocks of a Markdown file (fences tagged `rust`, `rust,...`).
fn rust_blocks(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match &mut cur {
            None => {
                if let Some(tag) = line.trim_start().strip_prefix("```") {
                    if tag == "rust" || tag.starts_with("rust,") && !tag.contains("ignore") {
                        cur = Some(String::new());
                    }
                }
            }
            Some(b) => {
                if line.trim_start() == "```" {
                    out.push(std::mem::take(b));
                    cur = None;
                } else {
                    b.push_str(line);
                    b.push('\n');
                }
            }
        }
    }
    out
}

fn workspace() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.join("Cargo.toml")
        .exists()
        .then_some(root)
        .filter(|r| r.join("README.md").exists())
}

/// Crates whose README is their doctest.
const DOCTESTED: &[&str] = &["bitnet-memory", "bitnet-tensor", "bitnet-mem"];

#[test]
fn every_readme_example_is_a_doctest() {
    let Some(root) = workspace() else {
        eprintln!("SKIPPED: not in the workspace (a packaged crate has no root README)");
        return;
    };
    let mut tested = Vec::new();
    for c in DOCTESTED {
        let lib = std::fs::read_to_string(root.join("crates").join(c).join("src/lib.rs")).unwrap();
        assert!(
            lib.contains("#[cfg(doctest)]") && lib.contains("include_str!(\"../README.md\")"),
            "{c}'s lib.rs does not run its README as doctests"
        );
        let blocks = rust_blocks(&root.join("crates").join(c).join("README.md"));
        assert!(!blocks.is_empty(), "{c}/README.md has no Rust example");
        tested.extend(blocks);
    }
    let mut checked = 0;
    for readme in [
        root.join("README.md"),
        root.join("crates/bitnet-report/README.md"),
    ] {
        let blocks = rust_blocks(&readme);
        assert!(
            !blocks.is_empty(),
            "{} has no Rust example",
            readme.display()
        );
        for b in blocks {
            assert!(
                tested.contains(&b),
                "{}: this example is in no doctested crate README:\n{b}",
                readme.display()
            );
            checked += 1;
        }
    }
    // The root README shows every entry point the issue names.
    let root_text = std::fs::read_to_string(root.join("README.md")).unwrap();
    for needle in [
        "MemoryManager::new",
        "#[global_allocator]",
        "Vec<u32, &MemoryManager>",
        "LeakCheck::start",
        "assert_no_leaks!",
        "mm.scope(",
        "mm.subscribe(",
        "to_prometheus()",
        "mm.snapshot()",
        "render_html",
        "planner::replay",
        "StatsAlloc",
        "record_metrics",
        "spawn_forwarder",
    ] {
        assert!(root_text.contains(needle), "the README shows no `{needle}`");
    }
    assert!(checked >= 10, "only {checked} examples");
}
