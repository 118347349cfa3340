//! Shared by the integration tests: a small trace whose figures are worked out by hand,
//! and helpers to read a page that headless Chromium has rendered.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Running live bytes: 1000, 101000, 2101000, 2100000, 2150000 (the peak, at t = 4000,
/// event 4: ids 3, 2, 4 live), 150000, 150300. Sizes fall in four size bands.
pub const SMALL_TRACE: &str = "op,id,size,align,thread,t_ns
a,1,1000,16,0,0
a,2,100000,64,0,1000
a,3,2000000,64,1,2000
f,1,0,0,0,3000
a,4,50000,16,0,4000
f,3,0,0,1,5000
a,5,300,16,0,6000
";
pub const SMALL_PEAK: u64 = 2_150_000;
pub const SMALL_PEAK_T: u64 = 4000;
pub const SMALL_PEAK_IDS: [u64; 3] = [3, 2, 4];
pub const SMALL_SERIES: [&str; 4] = [
    "< 4 KiB",
    "4 KiB - 64 KiB",
    "64 KiB - 1 MiB",
    "1 MiB - 16 MiB",
];

/// The recorded numpy trace: `BITNET_TRACE` if set, else `../shared/traces/` beside the
/// repository. Panics, saying where it looked, when the file is not there.
pub fn numpy_trace() -> PathBuf {
    let path = std::env::var_os("BITNET_TRACE").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces/numpy-serving.csv"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "the recorded trace is not at {}: these tests read numpy-serving.csv from \
         ../shared/traces/ beside the repository; set BITNET_TRACE to its path",
        path.display()
    );
    path
}

/// A fresh directory under the system's temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "bitnet-report-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        Self(p)
    }
}

impl Drop for TempDir {
    /// Removes the directory, unless `BITNET_REPORT_KEEP=1` asks to keep the pages for a
    /// look.
    fn drop(&mut self) {
        if std::env::var("BITNET_REPORT_KEEP").as_deref() == Ok("1") {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Chromium, or `None` when the browser tests are to be skipped
/// (`BITNET_SKIP_BROWSER=1`). Panics with what to do when it is missing.
pub fn chromium() -> Option<PathBuf> {
    if std::env::var("BITNET_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!("BITNET_SKIP_BROWSER=1: browser test skipped");
        return None;
    }
    let names = ["chromium", "chromium-browser"];
    if let Ok(p) = std::env::var("BITNET_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    panic!(
        "chromium is not installed, so the browser test cannot run. Install it with \
         `apt-get install -y chromium` (CI must install it the same way), point BITNET_CHROMIUM at a \
         binary, or set BITNET_SKIP_BROWSER=1 to skip this test on purpose."
    );
}

/// What headless Chromium made of a page: the DOM after scripts ran, and how long the
/// whole browser run took.
pub struct Rendered {
    pub dom: String,
    pub wall: Duration,
}

/// Loads `page` in headless Chromium and dumps its DOM. Panics, with Chromium's stderr,
/// if it fails or takes more than a minute.
pub fn dump_dom(chromium: &Path, page: &Path) -> Rendered {
    dump_dom_at(chromium, page, "")
}

/// [`dump_dom`] of the page with `fragment` after its address (`#stack=size`, ...).
pub fn dump_dom_at(chromium: &Path, page: &Path, fragment: &str) -> Rendered {
    let profile = TempDir::new("profile");
    let url = format!("file://{}{fragment}", page.display());
    let start = Instant::now();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .arg("--dump-dom")
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
    // Read both pipes on threads so a full pipe cannot stall the browser.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).map(|_| s)
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for chromium") {
            break st;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 60 s on {url}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let wall = start.elapsed();
    let dom = out_t.join().expect("stdout thread").expect("read stdout");
    let stderr = err_t.join().expect("stderr thread");
    assert!(
        status.success() && dom.contains("</html>"),
        "chromium failed ({status}) on {url}; stderr:\n{stderr}"
    );
    Rendered { dom, wall }
}

/// One start tag of the dumped DOM.
#[derive(Debug)]
pub struct Tag {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    /// Text right after the tag, up to the next tag.
    pub text: String,
}

impl Tag {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn has_class(&self, class: &str) -> bool {
        self.attr("class")
            .is_some_and(|c| c.split_whitespace().any(|c| c == class))
    }
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// Every start tag of a serialized DOM (as Chromium writes it: attribute values in
/// double quotes), in document order. Script contents are skipped.
pub fn tags(dom: &str) -> Vec<Tag> {
    let mut out = Vec::new();
    let b = dom.as_bytes();
    let mut i = 0;
    while let Some(off) = dom[i..].find('<') {
        let start = i + off + 1;
        let Some(c) = b.get(start) else { break };
        if !c.is_ascii_alphabetic() {
            i = start;
            continue;
        }
        let mut j = start;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'-') {
            j += 1;
        }
        let name = dom[start..j].to_ascii_lowercase();
        let mut attrs = Vec::new();
        loop {
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if j >= b.len() || b[j] == b'>' || b[j] == b'/' {
                break;
            }
            let ns = j;
            while j < b.len() && !b[j].is_ascii_whitespace() && b[j] != b'=' && b[j] != b'>' {
                j += 1;
            }
            let an = dom[ns..j].to_string();
            let mut val = String::new();
            if j < b.len() && b[j] == b'=' {
                j += 2; // `="`
                let end = dom[j..].find('"').map_or(b.len(), |e| j + e);
                val = unescape(&dom[j..end]);
                j = end + 1;
            }
            attrs.push((an, val));
        }
        let close = dom[j..].find('>').map_or(b.len(), |e| j + e + 1);
        let text_end = dom[close..].find('<').map_or(b.len(), |e| close + e);
        let text = unescape(&dom[close..text_end]);
        i = if name == "script" || name == "style" {
            let endtag = format!("</{name}>");
            dom[close..].find(&endtag).map_or(b.len(), |e| close + e)
        } else {
            close
        };
        out.push(Tag { name, attrs, text });
    }
    out
}

/// The tag with `id`, or a panic naming it.
pub fn by_id<'a>(tags: &'a [Tag], id: &str) -> &'a Tag {
    tags.iter()
        .find(|t| t.attr("id") == Some(id))
        .unwrap_or_else(|| panic!("no element with id `{id}` in the rendered DOM"))
}

pub fn snapshot_metrics(live: u64, reserved: u64) -> Value {
    json!({
        "live_bytes": live, "peak_live_bytes": 279000, "reserved_bytes": reserved,
        "peak_reserved_bytes": 2 << 20, "live_allocations": 4, "allocations": 6, "frees": 2,
        "free_bytes": 979456, "largest_free": 978432, "budget": null
    })
}

/// Before the history: id 1 (5000 B, large, freed at t = 400) and id 2 (3000 B, small,
/// still live). Running live bytes: 9000, 209000, 209000 (trim), 279000 (the peak, at
/// t = 350), 274000, 74000, 74000 (pressure), 74050.
pub fn sample_snapshot() -> Value {
    let e = |t: u64,
             kind: &str,
             id: Option<u64>,
             size: u64,
             live: u64,
             pool: Option<&str>,
             site: Option<&str>| {
        json!({ "t_ns": t, "kind": kind, "id": id, "size": size, "live_bytes": live,
                "reserved_bytes": 2 << 20, "pool": pool, "site": site })
    };
    let mut pressure = e(600, "pressure", None, 0, 74000, None, None);
    pressure["detail"] = json!("high");
    json!({
        "version": 1,
        "t_ns": 800,
        "metrics": snapshot_metrics(74050, 2 << 20),
        "devices": [{
            "device": 0,
            "backend": "cpu",
            "metrics": snapshot_metrics(74050, 2 << 20),
            "pools": [
                { "pool": "small", "chunks": [{ "index": 0, "base_offset": 4096, "size": 65536, "blocks": [
                    { "offset": 0, "size": 1024, "live": true, "size_class": 1024, "allocation_id": 10, "site": "a.rs:1" },
                    { "offset": 1024, "size": 1024, "live": false, "size_class": 1024 },
                    { "offset": 4096, "size": 3072, "live": true, "size_class": 3072, "allocation_id": 2, "site": "d.rs:4" },
                    { "offset": 8192, "size": 64, "live": true, "size_class": 64, "allocation_id": 13 }
                ]}]},
                { "pool": "large", "strategy": "tlsf", "chunks": [{ "index": 0, "base_offset": 1048576, "size": 1048576, "blocks": [
                    { "offset": 0, "size": 70144, "live": true, "allocation_id": 12, "site": "c.rs:3" },
                    { "offset": 70144, "size": 978432, "live": false }
                ]}]}
            ]
        }],
        "history": [
            e(100, "alloc", Some(10), 1000, 9000, Some("small"), Some("a.rs:1")),
            e(200, "alloc", Some(11), 200000, 209000, Some("large"), Some("b.rs:2")),
            e(300, "trim", None, 4096, 209000, None, None),
            e(350, "alloc", Some(12), 70000, 279000, Some("large"), Some("c.rs:3")),
            e(400, "free", Some(1), 5000, 274000, Some("large"), None),
            e(500, "free", Some(11), 200000, 74000, Some("large"), None),
            pressure,
            e(700, "alloc", Some(13), 50, 74050, Some("small"), None)
        ],
        "history_dropped": 12
    })
}
