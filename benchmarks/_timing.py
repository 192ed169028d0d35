"""Side-by-side timing shared by the benchmark scripts."""

from __future__ import annotations

import statistics
import time


def interleaved(fn_ours, fn_theirs, reps: int, warmup: int = 3):
    """Time two callables alternately (ours, theirs, ours, ...), so load from other processes
    hits both alike. Returns the median times in ms of both sides and the median of the
    per-iteration ratios theirs / ours (> 1 means ours is faster)."""
    for _ in range(warmup):
        fn_ours()
        fn_theirs()
    t_ours, t_theirs, ratios = [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn_ours()
        t1 = time.perf_counter()
        fn_theirs()
        t2 = time.perf_counter()
        t_ours.append((t1 - t0) * 1e3)
        t_theirs.append((t2 - t1) * 1e3)
        ratios.append((t2 - t1) / (t1 - t0))
    return statistics.median(t_ours), statistics.median(t_theirs), statistics.median(ratios)
