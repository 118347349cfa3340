// The per-block timeline, in the manner of PyTorch's memory_viz ("active memory
// timeline"): every block is a band from its allocation to its free, stacked on the
// blocks live with it, by address (allocation order where the address is unknown) or by
// size (largest at the bottom). Hovering a band names the block, its size and its site;
// dragging across the chart zooms into that time range, "show all" (or a double click)
// zooms out. The address may carry the view: #stack=size&from=T0&to=T1 (nanoseconds).
// report.js calls window.bitnetBlocks(data, helpers) with its drawing helpers.
window.bitnetBlocks = function (data, h) {
  'use strict';
  var blocks = data.blocks || [];
  var box = h.$('block-timeline');
  var note = h.$('block-note');
  var tEnd = 0;
  blocks.forEach(function (b) {
    tEnd = Math.max(tEnd, b.t_free_ns === undefined ? b.t_alloc_ns : b.t_free_ns, b.t_alloc_ns);
  });
  data.timeline.samples.forEach(function (s) { if (s.t_ns > tEnd) tEnd = s.t_ns; });
  var tStart = blocks.length ? blocks[0].t_alloc_ns : 0;
  var state = { stack: 'address', from: tStart, to: tEnd };
  (function readHash() {
    var q = {};
    location.hash.replace(/^#/, '').split('&').forEach(function (kv) {
      var p = kv.split('=');
      if (p.length === 2) q[p[0]] = decodeURIComponent(p[1]);
    });
    if (q.stack === 'size' || q.stack === 'address') state.stack = q.stack;
    var f = Number(q.from), t = Number(q.to);
    if (q.from !== undefined && q.to !== undefined && isFinite(f) && isFinite(t) && t > f) {
      state.from = f; state.to = t;
    }
  })();

  function endOf(b) { return b.t_free_ns === undefined ? tEnd : b.t_free_ns; }

  // The stacking order: a comparison of block indexes.
  function order(stack) {
    if (stack === 'size') {
      return function (i, j) { return (blocks[j].size - blocks[i].size) || (i - j); };
    }
    return function (i, j) {
      var a = blocks[i].addr, b = blocks[j].addr;
      var ka = a === undefined ? 1 : 0, kb = b === undefined ? 1 : 0;
      if (ka !== kb) return ka - kb;
      if (ka === 0 && a !== b) return a < b ? -1 : 1;
      return i - j;
    };
  }

  // Sweeps the allocations and frees in time order, keeping the live blocks sorted by
  // the stacking order; each block gets the points [t, offset] where its offset changed,
  // and `totals` the stack's height after each event.
  function layout(stack) {
    var cmp = order(stack), ev = [];
    blocks.forEach(function (b, i) {
      var end = Math.max(endOf(b), b.t_alloc_ns);
      ev.push([b.t_alloc_ns, 1, i]);
      // A block freed the moment it came is freed after that moment's allocations.
      ev.push([end, end === b.t_alloc_ns ? 2 : 0, i]);
    });
    // Frees before allocations at the same moment; ties by block.
    ev.sort(function (a, b) { return (a[0] - b[0]) || (a[1] - b[1]) || (a[2] - b[2]); });
    var live = [], off = new Array(blocks.length), pts = blocks.map(function () { return []; });
    var totals = [], top = 0;
    function restack(from, t) {
      var o = from > 0 ? off[live[from - 1]] + blocks[live[from - 1]].size : 0;
      for (var k = from; k < live.length; k++) {
        var i = live[k];
        if (off[i] !== o) { off[i] = o; pts[i].push([t, o]); }
        o += blocks[i].size;
      }
      return o;
    }
    ev.forEach(function (e) {
      var t = e[0], i = e[2], pos;
      if (e[1] === 1) {
        var lo = 0, hi = live.length;
        while (lo < hi) { var mid = (lo + hi) >> 1; if (cmp(live[mid], i) < 0) lo = mid + 1; else hi = mid; }
        pos = lo;
        live.splice(pos, 0, i);
        off[i] = -1;
      } else {
        pos = live.indexOf(i);
        live.splice(pos, 1);
        pts[i].push([t, off[i]]);
      }
      top = restack(pos, t);
      totals.push([t, top]);
    });
    return { pts: pts, totals: totals };
  }

  var cache = {};
  function colorOf(b) {
    var key = b.site || ('thread ' + (b.thread === undefined ? '?' : b.thread)), hsh = 0;
    for (var k = 0; k < key.length; k++) hsh = (hsh * 31 + key.charCodeAt(k)) | 0;
    return h.COLORS[Math.abs(hsh) % h.COLORS.length];
  }

  function describe(b) {
    return 'block ' + b.id + ': ' + h.fmtExact(b.size) +
      '\nsite: ' + (b.site || '(not recorded)') +
      (b.thread === undefined ? '' : '\nthread ' + b.thread) +
      '\nallocated at ' + h.fmtNs(b.t_alloc_ns) + ', ' +
      (b.t_free_ns === undefined ? 'live at the end' : 'freed at ' + h.fmtNs(b.t_free_ns)) +
      (b.addr === undefined ? '' : '\naddress 0x' + b.addr.toString(16));
  }

  function draw() {
    while (box.firstChild) box.removeChild(box.firstChild);
    h.$('stack-by-address').setAttribute('aria-pressed', String(state.stack === 'address'));
    h.$('stack-by-size').setAttribute('aria-pressed', String(state.stack === 'size'));
    if (blocks.length === 0) {
      note.textContent = 'No blocks to draw (the input has no allocations).';
      return;
    }
    var L = cache[state.stack] || (cache[state.stack] = layout(state.stack));
    var from = state.from, to = Math.max(state.to, state.from + 1);
    // The highest stack within the range (and the one standing as it starts).
    var yMax = 0, before = 0;
    L.totals.forEach(function (p) {
      if (p[0] < from) before = p[1];
      else if (p[0] <= to) yMax = Math.max(yMax, p[1]);
    });
    yMax = Math.max(yMax, before);
    var f = h.frame(from, to, yMax, 360);
    f.svg.setAttribute('id', 'block-svg');
    f.svg.dataset.stack = state.stack;
    f.svg.dataset.from = String(from);
    f.svg.dataset.to = String(to);
    var clip = h.sv('clipPath', { id: 'block-clip' });
    clip.appendChild(h.sv('rect', { x: f.left, y: f.top, width: f.w, height: f.h }));
    f.svg.appendChild(clip);
    var g = h.sv('g', { 'clip-path': 'url(#block-clip)', 'class': 'block-bands' });
    var drawn = 0;
    blocks.forEach(function (b, i) {
      var end = endOf(b);
      if (end < from || b.t_alloc_ns > to) return;
      var p = L.pts[i];
      if (p.length === 0) return;
      // Bottom edge forward, top edge back: steps where blocks below came or went.
      var bottom = [], x0 = f.x(b.t_alloc_ns), x1 = f.x(end);
      if (x1 - x0 < 1) x1 = x0 + 1;
      for (var k = 0; k < p.length; k++) {
        var x = k === 0 ? x0 : f.x(p[k][0]);
        if (k === p.length - 1) x = x1;
        bottom.push([x, p[k][1]]);
      }
      if (p.length === 1) bottom.push([x1, p[0][1]]);
      var d = 'M' + h.r1(bottom[0][0]) + ',' + h.r1(f.y(bottom[0][1]));
      for (k = 1; k < bottom.length; k++) {
        d += 'H' + h.r1(bottom[k][0]) + 'V' + h.r1(f.y(bottom[k][1]));
      }
      // Back along the top: at each step, up or down to the offset held before it.
      d += 'V' + h.r1(f.y(bottom[bottom.length - 1][1] + b.size));
      for (k = bottom.length - 1; k > 0; k--) {
        d += 'V' + h.r1(f.y(bottom[k - 1][1] + b.size)) + 'H' + h.r1(bottom[k - 1][0]);
      }
      d += 'Z';
      var path = h.sv('path', {
        d: d, 'class': 'block-band', fill: colorOf(b),
        'data-id': b.id, 'data-size': b.size, 'data-site': b.site || '',
        'data-thread': b.thread === undefined ? '' : b.thread
      });
      path.appendChild(h.sv('title', {}, describe(b)));
      g.appendChild(path);
      drawn++;
    });
    f.svg.appendChild(g);
    f.svg.dataset.bands = String(drawn);
    var sel = h.sv('rect', { 'class': 'zoom-selection', x: 0, y: f.top, width: 0, height: f.h, visibility: 'hidden' });
    f.svg.appendChild(sel);
    box.appendChild(f.svg);
    note.textContent = drawn + ' of ' + blocks.length + ' blocks in ' + h.fmtNs(Math.round(from)) +
      ' .. ' + h.fmtNs(Math.round(to)) + ', stacked by ' + state.stack +
      (state.stack === 'address' && blocks.some(function (b) { return b.addr === undefined; })
        ? ' (allocation order where the address is unknown)' : '') +
      (data.blocks_dropped ? '; ' + data.blocks_dropped + ' smaller blocks left out' : '') +
      '. Drag across the chart to zoom in.';
    interact(f, sel);
  }

  function interact(f, sel) {
    var tip = h.$('tooltip'), start = null;
    function tAt(ev) {
      var r = f.svg.getBoundingClientRect();
      var px = Math.min(Math.max(ev.clientX - r.left, f.left), f.left + f.w);
      return { px: px, t: f.tMin + (px - f.left) / f.w * (f.tMax - f.tMin) };
    }
    f.svg.addEventListener('mousedown', function (ev) { start = tAt(ev); ev.preventDefault(); });
    f.svg.addEventListener('mousemove', function (ev) {
      var id = ev.target.getAttribute && ev.target.getAttribute('data-id');
      if (id !== null && id !== undefined && start === null) {
        var b = blocks.filter(function (x) { return String(x.id) === id; })[0];
        tip.textContent = describe(b);
        tip.hidden = false;
        tip.style.left = (ev.pageX + 12) + 'px';
        tip.style.top = (ev.pageY + 12) + 'px';
      } else {
        tip.hidden = true;
      }
      if (start !== null) {
        var now = tAt(ev);
        sel.setAttribute('x', Math.min(start.px, now.px));
        sel.setAttribute('width', Math.abs(now.px - start.px));
        sel.setAttribute('visibility', 'visible');
      }
    });
    f.svg.addEventListener('mouseleave', function () { tip.hidden = true; });
    f.svg.addEventListener('mouseup', function (ev) {
      if (start === null) return;
      var end = tAt(ev), a = start;
      start = null;
      if (Math.abs(end.px - a.px) < 4) { sel.setAttribute('visibility', 'hidden'); return; }
      zoom(Math.min(a.t, end.t), Math.max(a.t, end.t));
    });
    f.svg.addEventListener('dblclick', function () { zoom(tStart, tEnd); });
  }

  function zoom(from, to) {
    state.from = from; state.to = to;
    var q = 'stack=' + state.stack + (from > tStart || to < tEnd ? '&from=' + Math.round(from) + '&to=' + Math.round(to) : '');
    if (history.replaceState) history.replaceState(null, '', '#' + q);
    draw();
  }

  h.$('stack-by-address').addEventListener('click', function () { state.stack = 'address'; zoom(state.from, state.to); });
  h.$('stack-by-size').addEventListener('click', function () { state.stack = 'size'; zoom(state.from, state.to); });
  h.$('block-zoom-reset').addEventListener('click', function () { zoom(tStart, tEnd); });
  draw();
};
