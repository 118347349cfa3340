//! The HTML page: one file, no network. The data goes in as JSON inside a
//! `<script type="application/json">`; an inline script draws everything from it.

use crate::model::{fmt_bytes_exact, ReportData, SourceKind};

const STYLE: &str = include_str!("assets/report.css");
const SCRIPT: &str = include_str!("assets/report.js");
const BLOCKS_SCRIPT: &str = include_str!("assets/blocks.js");

/// Renders the report as one self-contained HTML page (inline style and script, no
/// network). Elements a test or a user may rely on:
///
/// - `#timeline`: an SVG with one `path.live-series[data-series=NAME]` per live series
///   (stacked), `path.reserved-series` when reserved bytes were measured, and
///   `#peak-label[data-bytes=N]` whose text gives the exact peak.
/// - `#peak-table-body`: `tr.peak-row[data-id][data-size]`, largest first.
/// - `#fragmentation`: `path.frag-series[data-series=free|largest_free]`.
/// - `#chunk-map`: one `div.chunk[data-pool][data-index][data-live-bytes]` per chunk.
/// - `#leak-table-body` (`tr.leak-row`), `#summary-table-body` (`tr.summary-row`).
/// - `#block-timeline`: the per-block timeline, `svg#block-svg[data-stack=address|size]
///   [data-from][data-to][data-bands=N]` with one `path.block-band[data-id][data-size]
///   [data-site][data-thread]` per block drawn, its `<title>` naming the block, its size
///   and its site; `#stack-by-address`, `#stack-by-size` and `#block-zoom-reset` switch
///   the view, as does the address (`#stack=size&from=T0&to=T1`, nanoseconds).
/// - `body[data-rendered="true"]` once drawn (`"error"` and `#render-error` if not), and
///   `body[data-render-ms]`: milliseconds from navigation start to the end of drawing.
pub fn render_html(data: &ReportData) -> String {
    // `serde_json` cannot fail on this data (string keys, no non-finite floats).
    let json = serde_json::to_string(data).unwrap_or_else(|e| {
        let msg = serde_json::to_string(&e.to_string()).unwrap_or_default();
        format!("{{\"error\":{msg}}}")
    });
    // Inside <script>, `</script` or `<!--` would end or confuse the element; `<` only
    // occurs inside JSON strings, where `\u003c` means the same.
    let json = json.replace('<', "\\u003c");
    let source = match data.source {
        SourceKind::Trace => "allocation trace",
        SourceKind::TraceReplay => "allocation trace, replayed through bitnet-memory",
        SourceKind::Snapshot => "snapshot",
    };
    let peak = data
        .peak
        .map(|p| format!(", peak {}", fmt_bytes_exact(p.bytes)))
        .unwrap_or_default();
    let title = escape(&data.title);
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - memory report</title>
<style>
{STYLE}</style>
</head>
<body data-rendered="false">
<header>
<h1 id="report-title">{title}</h1>
<p id="report-source">{source}, {events} events{peak}</p>
</header>
<div id="render-error" hidden></div>
<section id="timeline-section">
<h2>Live and reserved bytes</h2>
<div id="timeline-legend" class="legend"></div>
<div id="timeline" class="chart"></div>
</section>
<section id="blocks-section">
<h2>Blocks over time</h2>
<div class="controls">stack by <button id="stack-by-address" type="button">address</button>
<button id="stack-by-size" type="button">size</button>
<button id="block-zoom-reset" type="button">show all</button></div>
<p id="block-note"></p>
<div id="block-timeline" class="chart"></div>
</section>
<section id="peak-section">
<h2>Live at the peak</h2>
<p id="peak-summary"></p>
<table id="peak-table">
<thead><tr><th>#</th><th>id</th><th class="num">size</th><th>series</th><th>site</th><th>thread</th><th class="num">allocated at</th></tr></thead>
<tbody id="peak-table-body"></tbody>
</table>
<button id="peak-more" type="button" hidden></button>
</section>
<section id="fragmentation-section">
<h2>Fragmentation: free bytes and largest free block</h2>
<div id="fragmentation-legend" class="legend"></div>
<div id="fragmentation" class="chart"></div>
</section>
<section id="chunks-section">
<h2>Chunk map</h2>
<div id="chunk-legend" class="legend"></div>
<div id="chunk-map"></div>
</section>
<section id="leaks-section">
<h2>Still live at the end</h2>
<table id="leak-table">
<thead><tr><th>site</th><th>thread</th><th class="num">blocks</th><th class="num">bytes</th><th class="num">largest</th><th>ids</th></tr></thead>
<tbody id="leak-table-body"></tbody>
</table>
</section>
<section id="summary-section">
<h2>Summary</h2>
<table id="summary-table"><tbody id="summary-table-body"></tbody></table>
</section>
<div id="tooltip" hidden></div>
<script id="report-data" type="application/json">{json}</script>
<script>
{BLOCKS_SCRIPT}
{SCRIPT}</script>
</body>
</html>
"#,
        events = data.timeline.events,
    )
}

/// Escapes text for HTML element content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
