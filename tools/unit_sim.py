#!/usr/bin/env python3
"""Offline bound: how many 2 MiB units (and 4 KiB pages) a layout keeps resident.

Replays a trace (docs/trace-format.md) in file order in one address space with first fit
or best fit (`-align`: blocks of 2 MiB and more start on a 2 MiB boundary). A unit or page
counts as resident while any live block overlaps it, so this is the footprint of an
allocator that hands back every empty unit (or page) at once and never moves data.
Prints the peak of each over the peak of live bytes, and how much of the live data lies in
units that live data covers whole (those could be huge pages at no cost in footprint): at
the live peak, and over the run as a share of the pages written when blocks are allocated.

    python3 tools/unit_sim.py ../shared/traces/numpy-serving.csv first|best|first-align|best-align

Pure Python; about a minute per policy on numpy-serving. See docs/resident.md.
"""
import sys, bisect
from collections import defaultdict
U = 2 << 20; P = 4096
ev = []
with open(sys.argv[1]) as f:
    next(f)
    for line in f:
        op, i, size, al, th, t = line.split(',')
        ev.append((op == 'a', int(i), max(int(size), 16)))
policy = sys.argv[2]
assert policy in ('first', 'best', 'first-align', 'best-align'), policy

class Arena:
    def __init__(self):
        self.free = [(0, 1 << 40)]  # sorted by addr: (addr, size)
    def alloc(self, size, align=16):
        best = None
        for k, (a, s) in enumerate(self.free):
            st = (a + align - 1) // align * align
            if st + size <= a + s:
                if policy.startswith('first'):
                    best = (k, st); break
                slack = s - size
                if best is None or slack < best[2]:
                    best = (k, st, slack)
        k, st = best[0], best[1]
        a, s = self.free[k]
        parts = []
        if st > a: parts.append((a, st - a))
        if st + size < a + s: parts.append((st + size, a + s - st - size))
        self.free[k:k+1] = parts
        return st
    def release(self, addr, size):
        k = bisect.bisect_left(self.free, (addr, 0))
        a, s = addr, size
        if k < len(self.free) and self.free[k][0] == a + s:
            s += self.free[k][1]; del self.free[k]
        if k > 0 and self.free[k-1][0] + self.free[k-1][1] == a:
            a = self.free[k-1][0]; s += self.free[k-1][1]; del self.free[k-1]; k -= 1
        self.free.insert(k, (a, s))

ar = Arena()
live = {}
units = defaultdict(int); pages = defaultdict(int)
cover = defaultdict(int)  # live bytes inside each unit
full = 0                  # units whose 2 MiB are all live
touched = touched_full = 0
full_at_peak = 0
ru = rp = 0; peak_u = peak_p = 0; cur = peak_live = 0
for is_a, i, size in ev:
    if is_a:
        align = U if (policy.endswith('align') and size >= U) else 16
        addr = ar.alloc(size, align)
        live[i] = (addr, size)
        cur += size
        for u in range(addr // U, (addr + size - 1) // U + 1):
            units[u] += 1
            if units[u] == 1: ru += 1
            cover[u] += min(addr + size, (u + 1) * U) - max(addr, u * U)
            if cover[u] == U: full += 1
        if cur > peak_live:
            peak_live, full_at_peak = cur, full
        # The block's pages are written now: how many lie in units live data covers whole.
        for u in range(addr // U, (addr + size - 1) // U + 1):
            n = (min(addr + size, (u + 1) * U) - max(addr, u * U) + P - 1) // P
            touched += n
            if cover[u] == U: touched_full += n
        for p in range(addr // P, (addr + size - 1) // P + 1):
            pages[p] += 1
            if pages[p] == 1: rp += 1
        peak_u = max(peak_u, ru); peak_p = max(peak_p, rp)
    elif i in live:
        addr, size = live.pop(i)
        cur -= size
        for u in range(addr // U, (addr + size - 1) // U + 1):
            units[u] -= 1
            if units[u] == 0: ru -= 1
            if cover[u] == U: full -= 1
            cover[u] -= min(addr + size, (u + 1) * U) - max(addr, u * U)
        for p in range(addr // P, (addr + size - 1) // P + 1):
            pages[p] -= 1
            if pages[p] == 0: rp -= 1
        ar.release(addr, size)
print(f"{policy}: peak live {peak_live/2**20:.1f} MiB; 4 KiB pages {peak_p*P/peak_live:.3f}x; "
      f"2 MiB units {peak_u*U/peak_live:.3f}x; at the live peak {full_at_peak*U/peak_live:.0%} of "
      f"live bytes lie in units live data covers whole; {touched_full/touched:.0%} of the pages "
      f"written at allocation lie in such units")
