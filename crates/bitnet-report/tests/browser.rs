//! The page as a browser draws it: headless Chromium runs the inline script and the
//! test reads the DOM it leaves. Needs `chromium` (Debian package); fails with a clear
//! message when it is missing, unless `BITNET_SKIP_BROWSER=1`.

mod common;

use bitnet_report::{render_html, ReplayOptions, ReportData, ReportOptions};
use common::*;
use std::collections::HashMap;
use std::sync::Mutex;

/// One browser at a time: the timing test must not share the CPU with the other.
static BROWSER: Mutex<()> = Mutex::new(());

/// The exact byte figure in a label like "peak 2,150,000 B (2.1 MiB) at 4.000 µs".
fn label_bytes(text: &str) -> u64 {
    let digits: String = text
        .trim_start_matches("peak ")
        .split(" B")
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| *c != ',')
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no byte count in peak label `{text}`"))
}

fn assert_rendered(tags: &[Tag]) {
    let body = tags.iter().find(|t| t.name == "body").expect("body");
    let err = by_id(tags, "render-error");
    assert_eq!(
        body.attr("data-rendered"),
        Some("true"),
        "the page's script did not finish: {}",
        err.text
    );
}

#[test]
fn chromium_draws_the_series_the_peak_and_the_live_at_peak_table() {
    let Some(chromium) = chromium() else { return };
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let data = ReportData::from_trace(SMALL_TRACE, &ReportOptions::default().title("small"))
        .expect("report");
    let dir = TempDir::new("small");
    let page = dir.0.join("report.html");
    std::fs::write(&page, render_html(&data)).expect("write page");

    let r = dump_dom(&chromium, &page);
    let tags = tags(&r.dom);
    assert_rendered(&tags);

    // One drawn path per live series, stacked in the data's order, each with points.
    let series: Vec<&Tag> = tags.iter().filter(|t| t.has_class("live-series")).collect();
    let names: Vec<&str> = series
        .iter()
        .filter_map(|t| t.attr("data-series"))
        .collect();
    assert_eq!(names, SMALL_SERIES, "timeline series");
    for s in &series {
        let d = s.attr("d").unwrap_or("");
        assert!(d.starts_with('M') && d.ends_with('Z'), "series path `{d}`");
    }
    // No replay: no reserved line.
    assert!(!tags.iter().any(|t| t.has_class("reserved-series")));

    // The peak label carries the exact figure, as data and as text.
    let label = by_id(&tags, "peak-label");
    assert_eq!(
        label.attr("data-bytes"),
        Some(SMALL_PEAK.to_string().as_str())
    );
    assert_eq!(
        label_bytes(&label.text),
        SMALL_PEAK,
        "label `{}`",
        label.text
    );
    assert_eq!(
        label.attr("data-t-ns"),
        Some(SMALL_PEAK_T.to_string().as_str())
    );

    // Live at the peak: the known blocks, largest first.
    let rows: Vec<(u64, u64)> = tags
        .iter()
        .filter(|t| t.has_class("peak-row"))
        .map(|t| {
            let n = |a| {
                t.attr(a)
                    .and_then(|v| v.parse().ok())
                    .expect("row attribute")
            };
            (n("data-id"), n("data-size"))
        })
        .collect();
    let ids: Vec<u64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(ids, SMALL_PEAK_IDS, "live-at-peak rows");
    assert_eq!(rows[0].1, 2_000_000);
    assert!(rows.windows(2).all(|w| w[0].1 >= w[1].1));

    // Leak table: the three blocks left, all from thread 0.
    let leaks: Vec<&Tag> = tags.iter().filter(|t| t.has_class("leak-row")).collect();
    assert_eq!(leaks.len(), 1);
    assert_eq!(leaks[0].attr("data-count"), Some("3"));
    assert_eq!(leaks[0].attr("data-bytes"), Some("150300"));

    // Summary rows come from the data.
    let summary: HashMap<&str, &Tag> = tags
        .iter()
        .filter(|t| t.has_class("summary-row"))
        .filter_map(|t| Some((t.attr("data-key")?, t)))
        .collect();
    assert!(
        summary.contains_key("peak live bytes"),
        "{:?}",
        summary.keys()
    );
}

#[test]
fn numpy_serving_report_renders_in_headless_chromium_under_two_seconds() {
    let Some(chromium) = chromium() else { return };
    let trace = std::fs::read_to_string(numpy_trace()).expect("read numpy-serving.csv");
    // The heavier page: replayed, so reserved and fragmentation series are drawn too.
    let opts = ReportOptions::default()
        .title("numpy-serving.csv")
        .replay(ReplayOptions::default());
    let data = ReportData::from_trace(&trace, &opts).expect("report");
    let html = render_html(&data);
    let dir = TempDir::new("numpy");
    let page = dir.0.join("numpy.html");
    std::fs::write(&page, &html).expect("write page");
    let trivial = dir.0.join("trivial.html");
    std::fs::write(&trivial, "<!DOCTYPE html><html><body>x</body></html>").expect("write");

    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let base = dump_dom(&chromium, &trivial);
    let r = dump_dom(&chromium, &page);
    let tags = tags(&r.dom);
    assert_rendered(&tags);
    let body = tags.iter().find(|t| t.name == "body").expect("body");
    let ms = |a| -> f64 {
        body.attr(a)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("body has no {a}"))
    };
    let render_ms = ms("data-render-ms");
    let script_ms = ms("data-script-ms");
    eprintln!(
        "numpy-serving.csv ({} events, page {} KiB, {} samples): navigation start to drawn \
         {render_ms:.0} ms (script {script_ms:.0} ms; phases: {}); whole chromium run \
         {:.2} s, of which an empty page takes {:.2} s",
        data.timeline.events,
        html.len() / 1024,
        data.timeline.samples.len(),
        body.attr("data-phase-ms").unwrap_or("?"),
        r.wall.as_secs_f64(),
        base.wall.as_secs_f64(),
    );
    assert!(
        render_ms < 2000.0,
        "the page took {render_ms:.0} ms from navigation start to drawn (limit 2000 ms)"
    );

    // And it drew the real thing.
    let label = by_id(&tags, "peak-label");
    let peak = data.peak.expect("peak").bytes;
    assert_eq!(label_bytes(&label.text), peak);
    let series = tags.iter().filter(|t| t.has_class("live-series")).count();
    assert_eq!(series, data.timeline.series.len());
    assert!(tags.iter().any(|t| t.has_class("reserved-series")));
    assert_eq!(
        tags.iter().filter(|t| t.has_class("frag-series")).count(),
        2,
        "free bytes and largest free block"
    );
    let first = tags
        .iter()
        .find(|t| t.has_class("peak-row"))
        .expect("live-at-peak rows");
    assert_eq!(
        first.attr("data-id"),
        Some(data.live_at_peak[0].id.to_string().as_str())
    );
}

#[test]
fn chromium_draws_a_snapshot_with_its_chunk_map_and_markers() {
    let Some(chromium) = chromium() else { return };
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let data =
        ReportData::from_snapshot_json(&sample_snapshot().to_string(), &ReportOptions::default())
            .expect("report");
    let dir = TempDir::new("snapshot");
    let page = dir.0.join("snapshot.html");
    std::fs::write(&page, render_html(&data)).expect("write page");
    let tags = tags(&dump_dom(&chromium, &page).dom);
    assert_rendered(&tags);

    let names: Vec<&str> = tags
        .iter()
        .filter(|t| t.has_class("live-series"))
        .filter_map(|t| t.attr("data-series"))
        .collect();
    assert_eq!(names, ["before history", "small", "large"]);
    assert_eq!(label_bytes(&by_id(&tags, "peak-label").text), 279_000);
    let first = tags.iter().find(|t| t.has_class("peak-row")).expect("rows");
    assert_eq!(first.attr("data-id"), Some("11"));

    // One bar per chunk, with its live bytes; live blocks drawn as such.
    let chunks: Vec<(&str, &str)> = tags
        .iter()
        .filter(|t| t.has_class("chunk"))
        .map(|t| {
            (
                t.attr("data-pool").unwrap_or(""),
                t.attr("data-live-bytes").unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(chunks, [("small", "4160"), ("large", "70144")]);
    let live_rects = tags
        .iter()
        .filter(|t| t.name == "rect" && t.has_class("live"))
        .count();
    assert_eq!(live_rects, 4, "one rect per live block");

    // The trim and the pressure event, and the fragmentation figures of the snapshot.
    let kinds: Vec<&str> = tags
        .iter()
        .filter(|t| t.has_class("marker"))
        .filter_map(|t| t.attr("data-kind"))
        .collect();
    assert_eq!(kinds, ["trim", "pressure"]);
    assert_eq!(
        tags.iter().filter(|t| t.has_class("frag-series")).count(),
        2
    );
    let leaks = tags.iter().filter(|t| t.has_class("leak-row")).count();
    assert_eq!(leaks, 4);
}

/// The per-block timeline of a live manager's snapshot: the band of a block allocated at a
/// known line carries its id, size and site (in its hover title too); the stacking
/// follows the toggle; a zoomed range draws only the blocks live in it.
#[test]
fn chromium_draws_a_band_per_block_with_its_site_stacked_and_zoomed() {
    use bitnet_memory::{MemoryConfig, MemoryManager};
    use std::alloc::Layout;
    let Some(chromium) = chromium() else { return };
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let mut config = MemoryConfig::default();
    config.cleanup.background = false;
    let mm = MemoryManager::new(config).unwrap();
    mm.record_history(1000).unwrap();
    let l = |n| Layout::from_size_align(n, 64).unwrap();
    let early = mm.allocate(l(3000));
    drop(early);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (known, line) = (mm.allocate(l(200_000)), line!());
    let small = mm.allocate(l(1000));
    let snap = mm.snapshot();
    drop((known, small));
    let data = ReportData::from_snapshot(&snap, &ReportOptions::default()).expect("report");
    assert_eq!(data.blocks.len(), 3, "{:?}", data.blocks);
    let site = format!("browser.rs:{line}");
    let known = data
        .blocks
        .iter()
        .find(|b| b.size == 200_000)
        .expect("known");
    assert!(
        known.site.as_deref().unwrap_or("").contains(&site),
        "{known:?}"
    );
    let dir = TempDir::new("blocks");
    let page = dir.0.join("blocks.html");
    std::fs::write(&page, render_html(&data)).expect("write page");

    let bands = |tags: &[Tag]| -> Vec<(String, String, String, String)> {
        let mut out = Vec::new();
        for (i, t) in tags.iter().enumerate() {
            if t.has_class("block-band") {
                let title = tags.get(i + 1).filter(|n| n.name == "title");
                out.push((
                    t.attr("data-id").unwrap_or("").to_string(),
                    t.attr("data-size").unwrap_or("").to_string(),
                    t.attr("data-site").unwrap_or("").to_string(),
                    title.map_or(String::new(), |n| n.text.clone()),
                ));
            }
        }
        out
    };

    let tags = tags(&dump_dom(&chromium, &page).dom);
    assert_rendered(&tags);
    let svg = by_id(&tags, "block-svg");
    assert_eq!(svg.attr("data-stack"), Some("address"));
    let all = bands(&tags);
    assert_eq!(all.len(), 3, "one band per block: {all:?}");
    let (id, size, band_site, title) = all
        .iter()
        .find(|b| b.1 == "200000")
        .expect("the known block's band");
    assert_eq!(id, &known.id.to_string());
    assert_eq!(size, "200000");
    assert!(band_site.contains(&site), "{band_site}");
    assert!(
        title.contains("200,000 B") && title.contains(&site),
        "hover names size and site: {title}"
    );
    // The band has a shape: a closed path with height.
    let d = tags
        .iter()
        .find(|t| t.has_class("block-band") && t.attr("data-size") == Some("200000"))
        .and_then(|t| t.attr("d"))
        .expect("path");
    assert!(d.starts_with('M') && d.ends_with('Z'), "{d}");

    // Stacked by size, zoomed to after the first block was freed: only the two later
    // blocks are drawn.
    let from = data.blocks[0].t_free_ns.expect("freed") + 1;
    let to = snap.t_ns;
    let tags_z = tags_of(&dump_dom_at(
        &chromium,
        &page,
        &format!("#stack=size&from={from}&to={to}"),
    ));
    assert_rendered(&tags_z);
    let svg = by_id(&tags_z, "block-svg");
    assert_eq!(svg.attr("data-stack"), Some("size"));
    assert_eq!(svg.attr("data-from"), Some(from.to_string().as_str()));
    let zoomed: Vec<String> = bands(&tags_z).into_iter().map(|b| b.1).collect();
    assert_eq!(zoomed.len(), 2, "{zoomed:?}");
    assert!(zoomed.contains(&"200000".to_string()) && zoomed.contains(&"1000".to_string()));
    assert_eq!(svg.attr("data-bands"), Some("2"));
}

fn tags_of(r: &Rendered) -> Vec<Tag> {
    tags(&r.dom)
}
