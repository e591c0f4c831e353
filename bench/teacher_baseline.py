"""The analyst teacher's Brier score on the test split of real market data, per horizon, next to
the constant-0.5 forecast and the training split's base rate. A report, not an assertion.

    python bench/teacher_baseline.py [--assets BTC,ETH,SOL,NEAR] [--horizons 1,7]

Reads CORTEX_MARKET_DATA (or ../shared/data/market); prints a message and exits 0 without it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cortex.data import build_samples, split_by_time  # noqa: E402
from cortex.data.dataset import load_frames  # noqa: E402
from cortex.data.sources import CsvSource  # noqa: E402
from cortex.data.teachers import AnalystTeacher  # noqa: E402


def market_dir() -> Path | None:
    for candidate in (os.environ.get("CORTEX_MARKET_DATA"),
                      Path(__file__).resolve().parents[2] / "shared" / "data" / "market"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", default="BTC,ETH,SOL,NEAR")
    parser.add_argument("--horizons", default="1,7")
    args = parser.parse_args()
    directory = market_dir()
    if directory is None:
        print("teacher_baseline: no real market data (set CORTEX_MARKET_DATA); skipped")
        return 0
    assets = args.assets.split(",")
    horizons = [int(h) for h in args.horizons.split(",")]
    t0 = time.time()
    frames = load_frames(CsvSource(directory), assets)
    splits, plan = split_by_time(build_samples(frames, assets, horizons, source="csv"))
    teacher = AnalystTeacher()
    teacher.fit(splits["train"])
    print(f"real data from {directory} ({', '.join(assets)}); analyst fitted on train "
          f"{plan.ranges['train'][0]}..{plan.ranges['train'][1]}; test {plan.ranges['test'][0]}.."
          f"{plan.ranges['test'][1]} (gap {plan.gap_days} days)")
    print(f"{'horizon':>7} {'n test':>7} {'up rate':>8} | {'Brier analyst':>13} {'const 0.5':>9} "
          f"{'base rate':>9} | {'skill vs base':>13} {'hit rate':>8}")
    for h in horizons:
        train = [s for s in splits["train"] if s.horizon_days == h]
        test = [s for s in splits["test"] if s.horizon_days == h]
        y = np.array([s.outcome_direction == "up" for s in test], dtype=float)
        p = np.array([teacher.predict(s)[0] for s in test])
        base = float(np.mean([s.outcome_direction == "up" for s in train]))
        b_analyst, b_half, b_base = brier(p, y), brier(np.full_like(y, 0.5), y), brier(np.full_like(y, base), y)
        hit = float(np.mean((p >= 0.5) == (y == 1)))
        print(f"{h:>7} {len(test):>7} {y.mean():>8.3f} | {b_analyst:>13.4f} {b_half:>9.4f} {b_base:>9.4f} | "
              f"{1 - b_analyst / b_base:>+13.2%} {hit:>8.3f}   (train base rate {base:.3f})")
    print(f"({time.time() - t0:.1f} s; skill = 1 - Brier/Brier(base rate): above 0 beats the base rate)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
