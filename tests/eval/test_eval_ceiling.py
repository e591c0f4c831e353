"""Brier skill on the fixed benchmark, its day-clustered paired interval, and the reference forecasters."""

from __future__ import annotations

import pytest

from cortex.data import build_samples, split_by_time
from cortex.data.dataset import load_frames
from cortex.data.sources import SyntheticSource
from cortex.eval.ceiling import (analyst_fitted_on, benchmark_samples, bootstrap_data, brier_skill, follows, moved,
                                 references, skill_difference)


def row(day: str, up: bool, asset: str = "BTC", h: int = 7) -> dict:
    return {"prompt": [], "asset": asset, "cutoff": day, "horizon_days": h, "outcome_return": 0.02 if up else -0.02,
            "realized_vol": 0.05}


def test_brier_skill_is_zero_for_a_coin_one_for_a_perfect_forecast_and_a_miss_counts_as_a_coin():
    rows = [row("2024-08-01", True), row("2024-08-02", False)]
    assert brier_skill([0.5, 0.5], rows) == 0.0
    assert brier_skill([1.0, 0.0], rows) == 1.0
    assert brier_skill([0.0, 1.0], rows) == -3.0
    assert brier_skill([None, 0.0], rows) == pytest.approx(0.5)  # an unparsed answer: 0.5
    assert brier_skill([0.5], rows) is None and brier_skill([], []) is None


def test_the_paired_difference_is_clustered_by_day():
    days = [f"2024-08-{d:02d}" for d in range(1, 31)]
    rows = [row(d, up, asset) for i, d in enumerate(days) for asset, up in (("BTC", i % 3 != 0), ("ETH", i % 3 != 0))]
    better = [0.8 if r["outcome_return"] > 0 else 0.3 for r in rows]  # knows something, not everything
    coin = [0.5] * len(rows)
    iv = skill_difference(rows, better, coin)
    assert iv.days == 30 and iv.questions == 60
    assert iv.mean == pytest.approx(brier_skill(better, rows) - brier_skill(coin, rows))
    assert iv.low > 0 and iv.low <= iv.mean <= iv.high
    same = skill_difference(rows, coin, coin)
    assert same.mean == same.low == same.high == 0.0
    with pytest.raises(ValueError, match="forecasts"):
        skill_difference(rows, coin[:-1], coin)


def test_references_rebuild_the_bootstraps_training_split_and_the_oracle_beats_a_coin():
    data = {"source": "synthetic:4", "seed": 4, "stride": 3, "start": "2021-01-01", "end": "2023-06-30",
            "assets": ["BTC", "ETH"], "horizons": [1, 7]}
    frames = load_frames(SyntheticSource(seed=4), ["BTC", "ETH"], data["start"], data["end"])
    samples = build_samples(frames, ["BTC", "ETH"], [1, 7], data["start"], data["end"], stride=3)
    splits, _ = split_by_time(samples)
    rows = [s.row() for s in splits["test"]]
    refs = references(rows, data)
    assert set(refs) == {"constant 0.5", "base rate", "analyst", "oracle"}
    assert all(len(p) == len(rows) for p in refs.values())
    assert brier_skill(refs["constant 0.5"], rows) == 0.0
    assert brier_skill(refs["oracle"], rows) > 0.0  # the market has something to learn
    assert all(0 < p < 1 for p in refs["analyst"])
    with pytest.raises(ValueError, match="not in the rebuilt dataset"):
        references([{**rows[0], "cutoff": "2030-01-01"}], data)


def test_bootstrap_data_reads_the_recipe_of_a_bootstrap_report():
    report = {"config": {"source": "synthetic:1", "seed": 1, "stride": 2, "start": None, "end": None},
              "data": {"assets": ["BTC"], "horizons": [1, 7]}}
    assert bootstrap_data(report) == {"source": "synthetic:1", "seed": 1, "stride": 2, "start": None, "end": None,
                                      "assets": ["BTC"], "horizons": [1, 7]}


def test_forecasts_moved_after_the_fact_keep_their_side_and_a_miss():
    assert moved([0.6, 0.4, None], 2.0) == pytest.approx([0.7, 0.3, None])
    assert moved([0.9, 0.1], 3.0) == [0.98, 0.02]  # never certain
    assert moved([0.6, None], toward=[0.8, 0.9], share=0.25) == pytest.approx([0.65, None])
    assert moved([0.55], 1.0) == [0.55]


def test_the_analyst_a_miner_fits_on_its_window_is_the_analyst_of_that_window():
    """``analyst_fitted_on``: fitted on a window's training split; on the window the bootstrap used, it is the
    references' analyst."""
    data = {"source": "synthetic:4", "seed": 4, "stride": 3, "start": "2021-01-01", "end": "2023-06-30",
            "assets": ["BTC", "ETH"], "horizons": [1, 7]}
    frames = load_frames(SyntheticSource(seed=4), ["BTC", "ETH"], data["start"], data["end"])
    splits, _ = split_by_time(build_samples(frames, ["BTC", "ETH"], [1, 7], data["start"], data["end"], stride=3))
    rows = [s.row() for s in splits["test"]][::4]
    questions = benchmark_samples(rows, data)
    same = analyst_fitted_on(questions, data, ["BTC", "ETH"], data["start"], data["end"])
    assert same == pytest.approx(references(rows, data)["analyst"])
    short = analyst_fitted_on(questions, data, ["ETH"], "2022-06-01", "2022-12-31")
    assert len(short) == len(rows) and short != same and all(0 < p < 1 for p in short)


def test_follows_tells_a_student_of_the_reading_from_one_of_the_lean():
    teacher = [0.2, 0.35, 0.5, 0.65, 0.8, 0.3]
    assert follows(teacher, teacher) == pytest.approx({"corr": 1.0, "slope": 1.0, "mean": 0.4667, "values": 6}, abs=1e-4)
    unsure = moved(teacher, 0.3)  # genesis: the same reading at 0.3 of the scale
    assert follows(unsure, teacher)["corr"] == pytest.approx(1.0) and follows(unsure, teacher)["slope"] == pytest.approx(0.3)
    lean = [0.15 if p < 0.5 else 0.6 for p in teacher]  # a few values, sure of "down"
    got = follows(lean, teacher)
    assert got["values"] == 2 and got["mean"] < follows(teacher, teacher)["mean"] and got["corr"] < 1
    missing = follows([None, 0.35, 0.5, 0.65, 0.8, 0.3], teacher)  # an unparsed answer counts as 0.5
    assert missing["corr"] < 1 and missing["mean"] == pytest.approx((0.5 + 0.35 + 0.5 + 0.65 + 0.8 + 0.3) / 6)
    assert follows([0.5] * 6, teacher)["corr"] is None and follows([0.5] * 6, teacher)["slope"] == 0.0
    assert follows(teacher, [0.5] * 6)["slope"] is None
    with pytest.raises(ValueError, match="forecasts against"):
        follows([0.5], teacher)
