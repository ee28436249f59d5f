"""Timing for benchmarks: median and 90th percentile of repeated calls after one warm-up call."""

from __future__ import annotations

import time

import numpy as np


def timings(fn, reps: int, warmup: bool = True) -> tuple[float, float]:
    """(median, p90) milliseconds of `reps` calls of fn()."""
    if warmup:
        fn()
    ms = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ms.append(1000 * (time.perf_counter() - t))
    return float(np.median(ms)), float(np.percentile(ms, 90))


def median_ms(fn, reps: int, warmup: bool = True) -> float:
    return timings(fn, reps, warmup)[0]
