"""The analyst's forecasts are informed only where a time-split check finds skill; elsewhere the base rate."""

from __future__ import annotations

import dataclasses
import random

import pytest

from cortex.data import build_samples, split_by_time
from cortex.data.dataset import load_frames
from cortex.data.sources import SyntheticParams, SyntheticSource
from cortex.data.teachers import AnalystTeacher
from cortex.eval.ceiling import brier_skill


def samples(momentum: float):
    src = SyntheticSource(params=SyntheticParams(seed=5, momentum=momentum))
    frames = load_frames(src, ["BTC", "ETH", "SOL"], "2020-01-01", "2024-06-30")
    return split_by_time(build_samples(frames, ["BTC", "ETH", "SOL"], [7], "2020-01-01", "2024-06-30", stride=2))[0]


def test_on_a_market_with_a_signal_the_analyst_is_informed_and_beats_a_coin_out_of_sample():
    splits = samples(2.0)
    teacher = AnalystTeacher()
    teacher.fit(splits["train"])
    m = teacher.models[7]
    assert m["informed"] and m["check_brier"] < m["check_base_brier"]
    rows = [s.row() for s in splits["test"]]
    assert brier_skill([teacher.predict(s)[0] for s in splits["test"]], rows) > 0.05
    assert teacher.describe()["horizons"]["7"]["informed"] is True


def test_without_skill_in_the_check_the_forecast_is_the_base_rate_and_nothing_is_weighed():
    splits = samples(2.0)
    teacher = AnalystTeacher()
    coin = random.Random(0)
    flipped = [dataclasses.replace(s, outcome_direction="up" if coin.random() < 0.5 else "down")  # coin flips
               for s in splits["train"]]
    teacher.fit(flipped)
    m = teacher.models[7]
    assert m["informed"] is False
    sample = splits["test"][0]
    p_up, ret, contrib = teacher.predict(sample)
    assert p_up == pytest.approx(m["base_rate"]) and not contrib.any()
    assert (ret >= 0) == (round(p_up, 2) >= 0.5)
    assert "Weighing" not in teacher.complete([sample])[0]
