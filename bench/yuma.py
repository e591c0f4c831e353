"""Benchmark one Yuma Consensus epoch: 256 uids, 64 validators, random weights and bonds.

Prints the median epoch time and, side by side, the vectorised kappa-median against a naive
per-column implementation (the chain's pivot search, one column at a time in Python).
Run: .venv/bin/python bench/yuma.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cortex.localchain.yuma import U16_MAX, YumaParams, epoch, weighted_median_col  # noqa: E402

N, VALIDATORS, REPEATS = 256, 64, 50


def naive_median(stake, score, minority, lo, hi):
    """math.rs `weighted_median`, scalar Python: mid-pivot binary search over stake."""
    if len(score) == 0:
        return 0.0
    if len(score) == 1:
        return score[0]
    pivot = score[len(score) // 2]
    lower = [(s, x) for s, x in zip(stake, score) if x < pivot]
    upper = [(s, x) for s, x in zip(stake, score) if x > pivot]
    lo_stake, hi_stake = sum(s for s, _ in lower), sum(s for s, _ in upper)
    if lo + lo_stake <= minority < hi - hi_stake:
        return pivot
    if minority < lo + lo_stake and lower:
        return naive_median(*map(list, zip(*lower)), minority, lo, lo + lo_stake)
    if hi - hi_stake <= minority and upper:
        return naive_median(*map(list, zip(*upper)), minority, hi - hi_stake, hi)
    return pivot


def naive_median_col(stake, score, majority):
    voters = stake > 0
    s = stake[voters] / stake[voters].sum()
    total = float(s.sum())
    return np.array([naive_median(s.tolist(), score[voters, j].tolist(), total - majority, 0.0,
                                  total) for j in range(score.shape[1])])


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), out


def main() -> None:
    rng = np.random.default_rng(0)
    stake = np.r_[rng.lognormal(3, 1, VALIDATORS), np.zeros(N - VALIDATORS)]
    permit = stake > 0
    weights = np.zeros((N, N))
    weights[:VALIDATORS] = rng.integers(0, U16_MAX + 1, size=(VALIDATORS, N))
    bonds = np.zeros((N, N))
    bonds[:VALIDATORS] = rng.integers(0, U16_MAX + 1, size=(VALIDATORS, N))
    last_update = rng.integers(9_000, 10_000, N)
    registered = rng.integers(0, 9_000, N)
    params = YumaParams(max_allowed_validators=VALIDATORS)

    epoch_ms, result = timed(lambda: epoch(stake, weights, bonds, permit, last_update, registered,
                                           10_000, emission=1e9, params=params), REPEATS)
    result.to_chain()
    a, w = result.active_stake, weights / np.maximum(weights.sum(1, keepdims=True), 1)
    majority = params.kappa / U16_MAX
    fast_ms, fast = timed(lambda: weighted_median_col(a, w, majority), REPEATS)
    naive_ms, naive = timed(lambda: naive_median_col(a, w, majority), 5)
    assert np.array_equal(fast, naive), "vectorised and naive kappa-medians disagree"
    print(f"uids={N} validators={VALIDATORS} repeats={REPEATS}")
    print(f"epoch_ms={epoch_ms:.3f}")
    print(f"median_ms vectorised={fast_ms:.3f} naive_per_column={naive_ms:.3f} "
          f"ratio={naive_ms / fast_ms:.1f}x")


if __name__ == "__main__":
    main()
