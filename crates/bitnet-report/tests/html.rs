//! The HTML page as a file: self-contained, data embedded safely. What the script draws
//! is checked in `browser.rs`.

mod common;

use bitnet_report::{render_html, ReportData, ReportOptions};
use common::*;

#[test]
fn page_is_self_contained() {
    let d = ReportData::from_trace(SMALL_TRACE, &ReportOptions::default()).expect("report");
    let html = render_html(&d);
    let lower = html.to_ascii_lowercase();
    for banned in [
        "<link",
        " src=",
        "href=",
        "@import",
        "fetch(",
        "xmlhttprequest",
        "import(",
    ] {
        assert!(
            !lower.contains(banned),
            "page refers to something outside it: `{banned}`"
        );
    }
    // The only URL is the SVG namespace, which is a name, not a request.
    let urls = lower.matches("http").count();
    let svg_ns = lower.matches("http://www.w3.org/2000/svg").count();
    assert_eq!(urls, svg_ns, "a URL other than the SVG namespace");
    assert!(html.contains("<style>") && html.contains("<script>"));
    for id in [
        "timeline",
        "peak-table-body",
        "fragmentation",
        "chunk-map",
        "leak-table-body",
        "summary-table-body",
        "block-timeline",
        "stack-by-address",
        "stack-by-size",
        "block-zoom-reset",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "no #{id}");
    }
}

#[test]
fn hostile_titles_and_sites_cannot_break_out_of_the_page() {
    let opts = ReportOptions::default().title("</script><script>alert(1)</script> & \"x\"");
    let mut d = ReportData::from_trace(SMALL_TRACE, &opts).expect("report");
    d.live_at_peak[0].site = Some("</script><!-- evil".into());
    d.blocks[0].site = Some("</script><!-- evil block".into());
    let html = render_html(&d);
    // Two script elements (data, code) and nothing else can close one.
    assert_eq!(html.matches("<script").count(), 2);
    assert_eq!(html.matches("</script>").count(), 2);
    assert!(html.contains("&lt;/script&gt;&lt;script&gt;alert(1)"));
    // The embedded JSON still reads back to the same data.
    let start =
        html.find("type=\"application/json\">").unwrap() + "type=\"application/json\">".len();
    let end = start + html[start..].find("</script>").unwrap();
    let back: ReportData = serde_json::from_str(&html[start..end]).expect("embedded JSON");
    assert_eq!(back, d);
}
