"""Validator scoring: win rates with the earlier-commit advantage, softmax, smoothing, shares."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from cortex.protocol.competition import EpsilonSchedule
from validator.scoring import BASE, Entry, smooth, softmax_weights, split_by_share, win_rates

EPS = EpsilonSchedule(start=0.01, end=0.001, decay_blocks=1000)


def test_better_model_wins_more_and_base_is_a_reference():
    good = Entry(1, 10, np.array([0.9, 0.8, 0.7]))
    bad = Entry(2, 10, np.array([0.1, 0.2, 0.9]))
    base = Entry(BASE, None, np.array([0.0, 0.0, 0.0]))
    rates = win_rates([good, bad, base], EPS, block=100)
    assert rates[1] > rates[2] > rates[BASE] == 0.0
    assert rates[1] == pytest.approx((3 + 2) / 6)  # beats base on 3, bad on 2 of 3


def test_a_later_copy_loses_to_the_original():
    original = Entry(1, 10, np.array([0.5, 0.6]))
    copy = Entry(2, 50, np.array([0.5, 0.6]))
    rates = win_rates([original, copy], EPS, block=100)
    assert rates[1] == 1.0 and rates[2] == 0.0
    # a later model must beat the incumbent by more than epsilon
    slightly = Entry(3, 50, np.array([0.5 + 0.005, 0.6 + 0.005]))
    assert win_rates([original, slightly], EPS, block=100)[3] == 0.0
    clearly = Entry(3, 50, np.array([0.52, 0.62]))
    assert win_rates([original, clearly], EPS, block=100)[3] == 1.0


def test_epsilon_decays_with_the_incumbents_age():
    original = Entry(1, 0, np.array([0.5]))
    newcomer = Entry(2, 5000, np.array([0.505]))
    assert win_rates([original, newcomer], EPS, block=5001)[2] == 1.0  # old incumbent: eps 0.001
    young = Entry(1, 4999, np.array([0.5]))
    assert win_rates([young, newcomer], EPS, block=5001)[2] == 0.0  # young incumbent: eps ~0.01


def test_failed_models_score_zero_and_are_not_opponents():
    ok = Entry(1, 1, np.array([0.1]))
    failed = Entry(2, 1, None, "non_finite")
    rates = win_rates([ok, failed], EPS, block=10)
    assert rates == {1: 1.0, 2: 0.0}
    assert softmax_weights(rates, 0.1) == {1: 1.0, 2: 0.0}


def test_softmax_temperature_and_base_excluded():
    rates = {1: 0.8, 2: 0.4, BASE: 0.9}
    sharp, flat = softmax_weights(rates, 0.01), softmax_weights(rates, 10.0)
    assert BASE not in sharp and sharp[1] > 0.99
    assert flat[1] == pytest.approx(0.5, abs=0.02)
    with pytest.raises(ValueError):
        softmax_weights(rates, 0.0)


def test_smoothing_alpha_is_the_weight_of_the_new_round():
    previous, current = {"a": 1.0}, {"b": 1.0}
    fast = smooth(previous, current, alpha=0.9)
    assert fast["b"] == pytest.approx(0.9) and fast["a"] == pytest.approx(0.1)
    slow = smooth(previous, current, alpha=0.1)
    assert slow["b"] == pytest.approx(0.1) and slow["a"] == pytest.approx(0.9)
    assert smooth(previous, current, alpha=1.0) == {"a": 0.0, "b": 1.0}
    with pytest.raises(ValueError):
        smooth(previous, current, alpha=0.0)


def test_split_by_share():
    out = split_by_share({"c1": {1: 1.0, 2: 1.0}, "c2": {3: 5.0}}, {"c1": 3.0, "c2": 1.0})
    assert out == pytest.approx({1: 0.375, 2: 0.375, 3: 0.25})
    assert split_by_share({"c1": {1: 0.0}}, {"c1": 1.0}) == {}


@given(st.lists(st.lists(st.floats(-1, 1.5), min_size=3, max_size=3), min_size=2, max_size=6),
       st.lists(st.integers(0, 50), min_size=6, max_size=6))
def test_win_rates_are_bounded_and_sum_to_half_the_pairs(rows, blocks):
    entries = [Entry(i, blocks[i], np.array(r)) for i, r in enumerate(rows)]
    no_eps = EpsilonSchedule(start=0.0, end=0.0, decay_blocks=1)
    rates = win_rates(entries, no_eps, block=100)
    m = len(rows)
    assert all(0.0 <= r <= 1.0 for r in rates.values())
    # without epsilon every comparison awards exactly one win in total
    assert sum(rates.values()) * (m - 1) == pytest.approx(m * (m - 1) / 2)
