"""Time splits with gaps, evaluation windows and deterministic draws."""

import pandas as pd
import pytest

from cortex.data import build_samples, draw, eval_samples, plan_splits, split_by_time
from cortex.data.frame import DataError
from cortex.data.sources import SyntheticSource

FRAMES = SyntheticSource(seed=5).load(["BTC", "ETH", "SOL"], "2022-01-01", "2023-12-31")
SAMPLES = build_samples(FRAMES, ["BTC", "ETH", "SOL"], [1, 7])


def test_splits_are_time_ordered_with_a_horizon_gap():
    splits, plan = split_by_time(SAMPLES)
    assert plan.gap_days == 7
    train, val, test = splits["train"], splits["validation"], splits["test"]
    assert len(train) > len(val) > 0 and len(test) > 0
    last_train_outcome = max(s.target_day for s in train)
    assert last_train_outcome < pd.Timestamp(min(s.cutoff for s in val))
    assert max(s.target_day for s in val) < pd.Timestamp(min(s.cutoff for s in test))
    gap = pd.Timestamp(plan.ranges["validation"][0]) - pd.Timestamp(plan.ranges["train"][1])
    assert gap.days == 8  # seven cutoff days left out between the splits
    kept = sum(len(v) for v in splits.values())
    assert kept == len(SAMPLES) - sum(1 for s in SAMPLES if plan.split_of(s.cutoff) is None)


def test_gap_may_not_be_shorter_than_the_horizon():
    with pytest.raises(DataError, match="shorter than the 7-day horizon"):
        split_by_time(SAMPLES, gap_days=3)
    splits, plan = split_by_time(SAMPLES, fractions=(0.6, 0.2, 0.2), gap_days=30)
    assert plan.gap_days == 30
    assert max(s.target_day for s in splits["train"]) < pd.Timestamp(plan.ranges["validation"][0])


def test_plan_edges():
    plan = plan_splits("2024-01-01", "2024-01-20", 1, (0.5, 0.25, 0.25))
    assert plan.ranges == {"train": ("2024-01-01", "2024-01-09"), "validation": ("2024-01-11", "2024-01-14"),
                           "test": ("2024-01-16", "2024-01-20")}
    with pytest.raises(DataError, match="too few"):
        plan_splits("2024-01-01", "2024-01-05", 7)
    with pytest.raises(DataError, match="no samples"):
        split_by_time([])


def test_eval_window_has_known_outcomes_only():
    window = eval_samples(FRAMES, ["BTC", "ETH"], [7], "2023-11-01", as_of="2023-12-10")
    assert window and all(s.cutoff >= "2023-11-01" and s.known for s in window)
    assert max(s.target_day for s in window) <= pd.Timestamp("2023-12-10")
    assert max(s.cutoff for s in window) == "2023-12-03"
    rows = [s.row() for s in window]
    assert set(rows[0]) >= {"asset", "cutoff", "horizon_days", "outcome_return", "outcome_direction",
                            "realized_vol", "prompt", "source", "synthetic"}


def test_draw_is_deterministic_and_seed_dependent():
    a = draw(SAMPLES, 20, seed=b"\x01" * 32)
    b = draw(list(reversed(SAMPLES)), 20, seed=b"\x01" * 32)
    c = draw(SAMPLES, 20, seed="another block hash")
    assert [(s.asset, s.cutoff, s.horizon_days) for s in a] == [(s.asset, s.cutoff, s.horizon_days) for s in b]
    assert a != c and len(set((s.asset, s.cutoff, s.horizon_days) for s in a)) == 20
    assert len(draw(SAMPLES[:5], 20, seed=1)) == 5
