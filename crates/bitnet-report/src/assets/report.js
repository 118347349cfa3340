// Draws the memory report from the JSON in #report-data. Plain JS, inline SVG, no
// network. Every chart keeps, per pixel column, the lowest and the highest state, so a
// peak narrower than a pixel still shows; exact figures come from the data, not the
// drawing.
(function () {
  'use strict';
  var t0 = performance.now();
  var SVG = 'http://www.w3.org/2000/svg';
  var COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948',
    '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
  var PEAK_ROWS = 100;
  var MAX_CHUNKS = 400;

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs) { if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]); }
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function sv(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) { if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]); }
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fmtBytes(b) {
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    var v = b, i = 0;
    while (v >= 1024 && i + 1 < u.length) { v /= 1024; i++; }
    return i === 0 ? b + ' B' : v.toFixed(1) + ' ' + u[i];
  }

  // 68518854 -> "68,518,854" (by hand: the first toLocaleString call loads locale data).
  function group(n) {
    var s = String(n), out = '';
    while (s.length > 3) { out = ',' + s.slice(-3) + out; s = s.slice(0, -3); }
    return s + out;
  }

  function fmtExact(b) {
    var s = group(b) + ' B';
    return b >= 1024 ? s + ' (' + fmtBytes(b) + ')' : s;
  }

  function fmtNs(ns) {
    if (ns < 1e3) return ns + ' ns';
    if (ns < 1e6) return (ns / 1e3).toFixed(3) + ' \u00b5s';
    if (ns < 1e9) return (ns / 1e6).toFixed(3) + ' ms';
    return (ns / 1e9).toFixed(3) + ' s';
  }

  function sum(a) { var s = 0; for (var i = 0; i < a.length; i++) s += a[i]; return s; }

  // Indexes of `idx` (into samples) to draw: per pixel column the first, the lowest,
  // the highest and the last by `value`, in time order.
  function perPixel(samples, idx, xOf, value) {
    var out = [], col = -1, lo = -1, hi = -1, first = -1, last = -1;
    function flush() {
      if (first < 0) return;
      var keep = [first, lo, hi, last];
      keep.sort(function (a, b) { return a - b; });
      for (var k = 0; k < keep.length; k++) {
        if (out.length === 0 || out[out.length - 1] !== keep[k]) out.push(keep[k]);
      }
    }
    for (var j = 0; j < idx.length; j++) {
      var i = idx[j];
      var c = Math.floor(xOf(samples[i].t_ns));
      var v = value(samples[i]);
      if (c !== col) { flush(); col = c; first = lo = hi = last = i; continue; }
      if (v < value(samples[lo])) lo = i;
      if (v > value(samples[hi])) hi = i;
      last = i;
    }
    flush();
    return out;
  }

  // A coordinate with one decimal (cheaper than toFixed, which matters at 10^4 points).
  function r1(v) { return Math.round(v * 10) / 10; }

  // A step path (the value holds until the next state) through the points.
  function stepPath(pts) {
    if (pts.length === 0) return '';
    var d = 'M' + r1(pts[0][0]) + ',' + r1(pts[0][1]);
    for (var i = 1; i < pts.length; i++) {
      d += 'H' + r1(pts[i][0]) + 'V' + r1(pts[i][1]);
    }
    return d;
  }

  function niceStep(max, n) {
    var raw = max / n, p = Math.pow(2, Math.floor(Math.log(raw) / Math.LN2));
    var steps = [1, 1.25, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (p * steps[i] >= raw) return p * steps[i];
    return p * 10;
  }

  // A chart frame: axes, ticks, scales. Returns {svg, x, y, w, h, left, top}.
  function frame(tMin, tMax, yMax, height) {
    var width = Math.max(480, WIDTH);
    var m = { left: 84, right: 16, top: 28, bottom: 30 };
    var w = width - m.left - m.right, h = height - m.top - m.bottom;
    var span = Math.max(1, tMax - tMin);
    yMax = Math.max(1, yMax);
    var svg = sv('svg', { width: width, height: height, viewBox: '0 0 ' + width + ' ' + height, 'class': 'chart-svg' });
    var f = {
      svg: svg, w: w, h: h, left: m.left, top: m.top, tMin: tMin, tMax: tMax,
      x: function (t) { return m.left + (t - tMin) / span * w; },
      y: function (v) { return m.top + h - v / yMax * h; }
    };
    var axes = sv('g', { 'class': 'axes' });
    var step = niceStep(yMax, 5);
    for (var v = 0; v <= yMax; v += step) {
      axes.appendChild(sv('line', { x1: m.left, x2: m.left + w, y1: f.y(v), y2: f.y(v), 'class': 'grid' }));
      axes.appendChild(sv('text', { x: m.left - 6, y: f.y(v) + 4, 'class': 'tick', 'text-anchor': 'end' }, fmtBytes(v)));
    }
    for (var k = 0; k <= 5; k++) {
      var t = tMin + span * k / 5;
      axes.appendChild(sv('text', { x: f.x(t), y: m.top + h + 18, 'class': 'tick', 'text-anchor': k === 0 ? 'start' : (k === 5 ? 'end' : 'middle') }, fmtNs(Math.round(t))));
    }
    axes.appendChild(sv('line', { x1: m.left, x2: m.left, y1: m.top, y2: m.top + h, 'class': 'axis' }));
    axes.appendChild(sv('line', { x1: m.left, x2: m.left + w, y1: m.top + h, y2: m.top + h, 'class': 'axis' }));
    svg.appendChild(axes);
    return f;
  }

  function legend(container, items) {
    items.forEach(function (it) {
      var s = el('span', { 'class': 'legend-item', 'data-series': it.name });
      s.appendChild(el('span', { 'class': 'swatch' + (it.line ? ' line' : ''), style: 'background:' + it.color }));
      s.appendChild(document.createTextNode(it.name));
      container.appendChild(s);
    });
  }

  function message(container, text) {
    container.appendChild(el('p', { 'class': 'empty' }, text));
  }

  // Hover read-out: the state at the nearest sample at or before the pointer.
  function hover(f, samples, describe) {
    var tip = $('tooltip');
    f.svg.addEventListener('mousemove', function (ev) {
      var r = f.svg.getBoundingClientRect();
      var px = ev.clientX - r.left;
      if (px < f.left || px > f.left + f.w || samples.length === 0) { tip.hidden = true; return; }
      var t = f.tMin + (px - f.left) / f.w * Math.max(1, f.tMax - f.tMin);
      var lo = 0, hi = samples.length - 1;
      while (lo < hi) { var mid = (lo + hi + 1) >> 1; if (samples[mid].t_ns <= t) lo = mid; else hi = mid - 1; }
      tip.textContent = describe(samples[lo]);
      tip.hidden = false;
      tip.style.left = (ev.pageX + 12) + 'px';
      tip.style.top = (ev.pageY + 12) + 'px';
    });
    f.svg.addEventListener('mouseleave', function () { tip.hidden = true; });
  }

  function renderTimeline(data) {
    var box = $('timeline'), tl = data.timeline, S = tl.samples, names = tl.series;
    var items = names.map(function (n, i) { return { name: n, color: COLORS[i % COLORS.length] }; });
    var all = [], withReserved = [];
    var yMax = data.peak ? data.peak.bytes : 0;
    for (var i = 0; i < S.length; i++) {
      all.push(i);
      var tot = sum(S[i].live);
      if (tot > yMax) yMax = tot;
      if (S[i].reserved !== undefined) { withReserved.push(i); if (S[i].reserved > yMax) yMax = S[i].reserved; }
    }
    if (withReserved.length) items.push({ name: 'reserved', color: '#222', line: true });
    legend($('timeline-legend'), items);
    if (S.length === 0) { message(box, 'No allocation events in this input.'); return; }
    var f = frame(S[0].t_ns, S[S.length - 1].t_ns, yMax * 1.08, 360);
    var total = function (s) { return sum(s.live); };
    var keep = perPixel(S, all, f.x, total);
    var g = sv('g', { id: 'timeline-series' });
    for (var k = 0; k < names.length; k++) {
      var upper = [], lower = [];
      for (var j = 0; j < keep.length; j++) {
        var s = S[keep[j]], below = 0;
        for (var q = 0; q < k; q++) below += s.live[q];
        var x = f.x(s.t_ns);
        lower.push([x, f.y(below)]);
        upper.push([x, f.y(below + s.live[k])]);
      }
      var xEnd = f.x(S[S.length - 1].t_ns) + 1;
      upper.push([xEnd, upper[upper.length - 1][1]]);
      lower.push([xEnd, lower[lower.length - 1][1]]);
      var back = lower.slice().reverse();
      var d = stepPath(upper) + 'L' + r1(back[0][0]) + ',' + r1(back[0][1]);
      // Walk the lower edge backwards as steps too: vertical first, then horizontal.
      for (var b = 1; b < back.length; b++) d += 'V' + r1(back[b][1]) + 'H' + r1(back[b][0]);
      d += 'Z';
      g.appendChild(sv('path', {
        d: d, 'class': 'live-series', 'data-series': names[k], 'data-points': keep.length,
        fill: COLORS[k % COLORS.length]
      }));
    }
    f.svg.appendChild(g);
    if (withReserved.length) {
      var rk = perPixel(S, withReserved, f.x, function (s) { return s.reserved; });
      var pts = rk.map(function (i) { return [f.x(S[i].t_ns), f.y(S[i].reserved)]; });
      f.svg.appendChild(sv('path', { d: stepPath(pts), 'class': 'reserved-series', 'data-series': 'reserved', 'data-points': pts.length }));
    }
    markers(f, data.markers || []);
    if (data.peak) {
      var p = data.peak, px = f.x(p.t_ns), py = f.y(p.bytes);
      var pg = sv('g', { id: 'peak-marker' });
      pg.appendChild(sv('line', { x1: px, x2: px, y1: f.top, y2: f.top + f.h, 'class': 'peak-line' }));
      pg.appendChild(sv('circle', { cx: px, cy: py, r: 4, 'class': 'peak-dot' }));
      var right = px < f.left + f.w * 0.6;
      pg.appendChild(sv('text', {
        id: 'peak-label', 'data-bytes': p.bytes, 'data-t-ns': p.t_ns,
        x: right ? px + 8 : px - 8, y: Math.max(f.top + 12, py - 8), 'text-anchor': right ? 'start' : 'end'
      }, 'peak ' + fmtExact(p.bytes) + ' at ' + fmtNs(p.t_ns)));
      f.svg.appendChild(pg);
    }
    hover(f, S, function (s) {
      var lines = [fmtNs(s.t_ns)];
      for (var i = names.length - 1; i >= 0; i--) lines.push(names[i] + ': ' + fmtExact(s.live[i]));
      lines.push('live: ' + fmtExact(sum(s.live)));
      if (s.reserved !== undefined) lines.push('reserved: ' + fmtExact(s.reserved));
      return lines.join('\n');
    });
    box.appendChild(f.svg);
    box.dataset.series = names.length;
    box.dataset.samples = S.length;
  }

  // Trim and pressure events as thin vertical lines, one per pixel column and kind.
  function markers(f, list) {
    var g = sv('g', { id: 'timeline-markers' }), seen = {};
    list.forEach(function (m) {
      var x = Math.round(f.x(m.t_ns)), key = m.kind + x;
      if (seen[key]) return;
      seen[key] = true;
      var line = sv('line', { x1: x, x2: x, y1: f.top, y2: f.top + f.h, 'class': 'marker marker-' + m.kind, 'data-kind': m.kind });
      line.appendChild(sv('title', {}, m.kind + ' at ' + fmtNs(m.t_ns) + (m.bytes ? ', ' + fmtExact(m.bytes) : '') + (m.detail ? ' (' + m.detail + ')' : '')));
      g.appendChild(line);
    });
    f.svg.appendChild(g);
  }

  function renderPeakTable(data) {
    var body = $('peak-table-body'), rows = data.live_at_peak || [], p = data.peak;
    var total = 0;
    for (var i = 0; i < rows.length; i++) total += rows[i].size;
    $('peak-summary').textContent = p
      ? rows.length + ' blocks known live at the peak of ' + fmtExact(p.bytes) + ' (' + fmtNs(p.t_ns) +
        '), ' + fmtExact(total) + ' in these blocks; largest first.'
      : 'No peak: the input has no allocation events.';
    function add(from, to) {
      var frag = document.createDocumentFragment();
      for (var i = from; i < to; i++) {
        var r = rows[i];
        var tr = el('tr', { 'class': 'peak-row', 'data-id': r.id, 'data-size': r.size });
        tr.appendChild(el('td', { 'class': 'num' }, String(i + 1)));
        tr.appendChild(el('td', {}, String(r.id)));
        tr.appendChild(el('td', { 'class': 'num' }, fmtExact(r.size)));
        tr.appendChild(el('td', {}, r.series));
        tr.appendChild(el('td', { 'class': 'site' }, r.site || '-'));
        tr.appendChild(el('td', {}, r.thread === undefined ? '-' : String(r.thread)));
        tr.appendChild(el('td', { 'class': 'num' }, r.t_alloc_ns === undefined ? '-' : fmtNs(r.t_alloc_ns)));
        frag.appendChild(tr);
      }
      body.appendChild(frag);
    }
    var shown = Math.min(PEAK_ROWS, rows.length);
    add(0, shown);
    if (shown < rows.length) {
      var btn = $('peak-more');
      btn.textContent = 'Show all ' + rows.length + ' blocks';
      btn.hidden = false;
      btn.addEventListener('click', function () { add(shown, rows.length); btn.hidden = true; });
    }
  }

  function renderFragmentation(data) {
    var box = $('fragmentation'), S = data.timeline.samples, idx = [], yMax = 0;
    for (var i = 0; i < S.length; i++) {
      if (S[i].free !== undefined || S[i].largest_free !== undefined) {
        idx.push(i);
        yMax = Math.max(yMax, S[i].free || 0, S[i].largest_free || 0);
      }
    }
    if (idx.length === 0) {
      message(box, 'No free-block figures in this input: a trace read without replay has none. ' +
        'Replay it through the pool, or report a snapshot.');
      return;
    }
    var lines = [
      { key: 'free', name: 'free bytes', color: '#e15759' },
      { key: 'largest_free', name: 'largest free block', color: '#4e79a7' }
    ];
    legend($('fragmentation-legend'), lines.map(function (l) { return { name: l.name, color: l.color, line: true }; }));
    // Same time axis as the timeline above, so the two charts line up.
    var f = frame(S[0].t_ns, S[S.length - 1].t_ns, yMax * 1.08, 260);
    lines.forEach(function (l) {
      var have = idx.filter(function (i) { return S[i][l.key] !== undefined; });
      var keep = perPixel(S, have, f.x, function (s) { return s[l.key]; });
      var pts = keep.map(function (i) { return [f.x(S[i].t_ns), f.y(S[i][l.key])]; });
      f.svg.appendChild(sv('path', { d: stepPath(pts), 'class': 'frag-series', 'data-series': l.key, 'data-points': pts.length, stroke: l.color }));
      if (pts.length === 1) f.svg.appendChild(sv('circle', { cx: pts[0][0], cy: pts[0][1], r: 4, fill: l.color }));
    });
    var fs = idx.map(function (i) { return S[i]; });
    hover(f, fs, function (s) {
      return fmtNs(s.t_ns) + '\nfree: ' + (s.free === undefined ? '-' : fmtExact(s.free)) +
        '\nlargest free block: ' + (s.largest_free === undefined ? '-' : fmtExact(s.largest_free));
    });
    box.appendChild(f.svg);
  }

  // Each chunk as a bar. Few blocks: one rect each, with a tooltip. Many: one rect per
  // run of pixel columns that are all live, all free or mixed.
  function renderChunks(data) {
    var box = $('chunk-map'), chunks = data.chunks || [];
    legend($('chunk-legend'), [
      { name: 'live', color: '#4e79a7' }, { name: 'free', color: '#d9d9d9' },
      { name: 'live and free within a pixel', color: '#a0b6d0' }
    ]);
    if (chunks.length === 0) {
      message(box, 'No chunk layout in this input: traces record blocks, not chunks. A snapshot has it.');
      return;
    }
    var W = Math.max(320, WIDTH - 8);
    chunks.slice(0, MAX_CHUNKS).forEach(function (c) {
      var live = 0, free = 0, largest = 0;
      c.blocks.forEach(function (b) {
        if (b.live) live += b.size; else { free += b.size; if (b.size > largest) largest = b.size; }
      });
      var div = el('div', {
        'class': 'chunk', 'data-device': c.device, 'data-pool': c.pool, 'data-index': c.index,
        'data-size': c.size, 'data-live-bytes': live, 'data-free-bytes': free, 'data-blocks': c.blocks.length
      });
      div.appendChild(el('div', { 'class': 'chunk-label' },
        'device ' + c.device + ' \u00b7 ' + c.pool + ' \u00b7 chunk ' + c.index + ' \u00b7 ' + fmtBytes(c.size) +
        ' \u00b7 live ' + fmtBytes(live) + ' \u00b7 free ' + fmtBytes(free) + ' \u00b7 largest free ' + fmtBytes(largest) +
        ' \u00b7 ' + c.blocks.length + ' blocks'));
      var svg = sv('svg', { width: W, height: 18, 'class': 'chunk-bar' });
      svg.appendChild(sv('rect', { x: 0, y: 0, width: W, height: 18, 'class': 'blk uncovered' }));
      var scale = W / Math.max(1, c.size);
      if (c.blocks.length <= 2 * W) {
        c.blocks.forEach(function (b) {
          var r = sv('rect', { x: b.offset * scale, y: 0, width: Math.max(0.5, b.size * scale), height: 18, 'class': 'blk ' + (b.live ? 'live' : 'free') });
          r.appendChild(sv('title', {}, (b.live ? 'live' : 'free') + ' ' + fmtExact(b.size) + ' at offset ' + b.offset +
            (b.allocation_id !== undefined ? ', id ' + b.allocation_id : '') + (b.site ? ', ' + b.site : '')));
          svg.appendChild(r);
        });
      } else {
        var liveCol = new Float64Array(W), freeCol = new Float64Array(W);
        c.blocks.forEach(function (b) {
          var a = b.offset * scale, e = (b.offset + b.size) * scale, col = b.live ? liveCol : freeCol;
          for (var x = Math.floor(a); x < Math.min(W, Math.ceil(e)); x++) {
            col[x] += Math.min(e, x + 1) - Math.max(a, x);
          }
        });
        var cls = function (x) {
          if (liveCol[x] === 0 && freeCol[x] === 0) return '';
          return liveCol[x] === 0 ? 'free' : (freeCol[x] === 0 ? 'live' : 'mixed');
        };
        var start = 0;
        for (var x = 1; x <= W; x++) {
          if (x === W || cls(x) !== cls(start)) {
            if (cls(start)) svg.appendChild(sv('rect', { x: start, y: 0, width: x - start, height: 18, 'class': 'blk ' + cls(start) }));
            start = x;
          }
        }
      }
      div.appendChild(svg);
      box.appendChild(div);
    });
    if (chunks.length > MAX_CHUNKS) message(box, (chunks.length - MAX_CHUNKS) + ' more chunks not drawn.');
  }

  function renderLeaks(data) {
    var body = $('leak-table-body'), leaks = data.leaks || [];
    if (leaks.length === 0) {
      var tr = el('tr', { 'class': 'leak-none' });
      tr.appendChild(el('td', { colspan: 6 }, 'Nothing was live at the end.'));
      body.appendChild(tr);
      return;
    }
    leaks.forEach(function (g) {
      var tr = el('tr', { 'class': 'leak-row', 'data-bytes': g.bytes, 'data-count': g.count });
      tr.appendChild(el('td', { 'class': 'site' }, g.site || '(site not recorded)'));
      tr.appendChild(el('td', {}, g.thread === null || g.thread === undefined ? '-' : String(g.thread)));
      tr.appendChild(el('td', { 'class': 'num' }, String(g.count)));
      tr.appendChild(el('td', { 'class': 'num' }, fmtExact(g.bytes)));
      tr.appendChild(el('td', { 'class': 'num' }, fmtExact(g.largest)));
      tr.appendChild(el('td', {}, g.example_ids.join(', ') + (g.count > g.example_ids.length ? ', \u2026' : '')));
      body.appendChild(tr);
    });
  }

  // The per-block timeline lives in blocks.js; it draws with these helpers.
  function renderBlocks(data) {
    window.bitnetBlocks(data, {
      $: $, sv: sv, frame: frame, r1: r1, fmtExact: fmtExact, fmtNs: fmtNs, COLORS: COLORS
    });
  }

  function renderSummary(data) {
    var body = $('summary-table-body');
    (data.summary || []).forEach(function (s) {
      var tr = el('tr', { 'class': 'summary-row', 'data-key': s.key });
      tr.appendChild(el('th', {}, s.key));
      tr.appendChild(el('td', {}, s.value));
      body.appendChild(tr);
    });
  }

  // Read the layout once, before drawing: asking again later would lay out every
  // chart drawn so far.
  var WIDTH = Math.floor($('timeline').clientWidth) || 960;
  try {
    var data = JSON.parse($('report-data').textContent);
    var times = ['parse ' + (performance.now() - t0).toFixed(1)];
    [['timeline', renderTimeline], ['peak-table', renderPeakTable], ['fragmentation', renderFragmentation],
      ['chunks', renderChunks], ['leaks', renderLeaks], ['summary', renderSummary],
      ['blocks', renderBlocks]].forEach(function (r) {
      var s = performance.now();
      r[1](data);
      times.push(r[0] + ' ' + (performance.now() - s).toFixed(1));
    });
    document.body.dataset.phaseMs = times.join(', ');
    document.body.dataset.rendered = 'true';
  } catch (e) {
    var box = $('render-error');
    box.textContent = 'The report could not be drawn: ' + (e && e.stack ? e.stack : e);
    box.hidden = false;
    document.body.dataset.rendered = 'error';
  }
  var now = performance.now();
  document.body.dataset.renderMs = now.toFixed(1);
  document.body.dataset.scriptMs = (now - t0).toFixed(1);
})();
