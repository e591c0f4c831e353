"""Prompts hold only data up to the cutoff; outcomes and realized_vol are what the docs say."""

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cortex.data import (
    SYSTEM_PROMPT,
    build_samples,
    make_prompt,
    make_sample,
    outcome,
    realized_vol,
)
from cortex.data.features import MIN_HISTORY
from cortex.data.frame import MARKET_COLUMNS, DataError
from cortex.data.prompts import approx_tokens, format_answer
from cortex.data.sources import SyntheticSource

FRAMES = SyntheticSource(seed=21).load(["BTC", "ETH"], "2023-01-01", "2023-12-31")
CUTOFF = pd.Timestamp("2023-09-15")


def test_prompt_shape_and_answer_format():
    system, user = make_prompt(FRAMES, "ETH", CUTOFF, 7)
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert '<think>…</think><answer>{"asset": "BTC", "horizon_days": 7, "direction": "up"|"down", ' \
           '"p_up": 0..1, "return_pct": <percent>}</answer>' in SYSTEM_PROMPT
    text = user["content"]
    assert user["role"] == "user" and text.startswith("ETH daily data up to 2023-09-15 (UTC).")
    assert "(asset ETH, horizon_days 7)" in text
    for needle in ("returns: 1d ", "3d ", "14d ", "30d ", "realised vol a day: 7d", "volume 7d vs prior 30d",
                   "taker-buy ratio 7d", "from high: 30d", "vs BTC (pts)"):
        assert needle in text
    rows = [line for line in text.splitlines() if re.match(r"^\d\d \d", line)]
    assert len(rows) == 10 and rows[-1].startswith("15 ")
    close = FRAMES["ETH"].loc[CUTOFF, "close"]
    assert rows[-1].split()[1] == f"{close:.0f}" if close >= 1000 else True


def test_prompt_is_short():
    for asset in ("BTC", "ETH"):
        system, user = make_prompt(FRAMES, asset, CUTOFF, 1)
        text = system["content"] + "\n" + user["content"]
        assert len(text) < 1000 and approx_tokens(text) < 430  # a tokenizer-free upper estimate


def test_btc_prompt_has_no_strength_against_itself():
    assert "vs BTC" not in make_prompt(FRAMES, "BTC", CUTOFF, 7)[1]["content"]


def test_outcome_and_realized_vol_definitions():
    eth = FRAMES["ETH"]
    ret, direction = outcome(eth, CUTOFF, 7)
    assert ret == pytest.approx(eth.close[CUTOFF + pd.Timedelta(days=7)] / eth.close[CUTOFF] - 1)
    assert direction == ("up" if ret > 0 else "down")
    logret = np.log(eth.close.loc[:CUTOFF]).diff().iloc[-30:]
    assert realized_vol(eth, CUTOFF, 7) == pytest.approx(math.sqrt((logret**2).mean()) * math.sqrt(7))
    assert outcome(eth, "2023-12-30", 7) is None  # not known yet
    s = make_sample(FRAMES, "ETH", "2023-12-30", 7, source="x", synthetic=True)
    assert not s.known and s.row()["outcome_return"] is None and s.synthetic


def test_too_little_history_or_no_row_is_an_error():
    with pytest.raises(DataError, match="need 91"):
        make_prompt(FRAMES, "ETH", "2023-02-01", 1)
    with pytest.raises(DataError, match="no row for the cutoff day 2024-05-01"):
        make_prompt(FRAMES, "ETH", "2024-05-01", 1)


def test_build_samples_agree_with_make_prompt():
    samples = build_samples(FRAMES, ["BTC", "ETH"], [1, 7], "2023-09-01", "2023-09-30", source="syn")
    assert len(samples) == 2 * 2 * 30
    assert [s.cutoff for s in samples] == sorted(s.cutoff for s in samples)
    for s in samples[::13]:
        assert s.prompt == make_prompt(FRAMES, s.asset, s.cutoff, s.horizon_days)
        assert s.outcome_return == pytest.approx(outcome(FRAMES[s.asset], s.cutoff, s.horizon_days)[0])
        assert s.realized_vol == pytest.approx(realized_vol(FRAMES[s.asset], s.cutoff, s.horizon_days))
    late = build_samples(FRAMES, ["ETH"], [7], "2023-12-20", None)
    assert late[-1].cutoff == "2023-12-24"  # outcome known only up to the last day
    first = build_samples(FRAMES, ["ETH"], [1])[0]
    assert first.cutoff == str((FRAMES["ETH"].index[0] + pd.Timedelta(days=MIN_HISTORY - 1)).date())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    asset=st.sampled_from(["BTC", "ETH"]),
    cutoff_pos=st.integers(MIN_HISTORY - 1, 340),
    horizon=st.sampled_from([1, 3, 7]),
    target=st.sampled_from(["BTC", "ETH"]),
    column=st.sampled_from(MARKET_COLUMNS),
    offset=st.integers(1, 30),
    factor=st.floats(0.01, 100.0, allow_nan=False),
    extra=st.booleans(),
)
def test_values_after_the_cutoff_never_change_the_prompt(asset, cutoff_pos, horizon, target, column, offset,
                                                         factor, extra):
    cutoff = FRAMES[asset].index[cutoff_pos]
    before = make_prompt(FRAMES, asset, cutoff, horizon)
    changed = {a: f.copy() for a, f in FRAMES.items()}
    later = changed[target].index[changed[target].index > cutoff]
    day = later[min(offset, len(later)) - 1]
    changed[target].loc[day, column] = changed[target].loc[day, column] * factor
    if extra:  # rewrite every later value of the asset at once
        changed[asset].loc[changed[asset].index > cutoff, :] *= factor
    assert make_prompt(changed, asset, cutoff, horizon) == before


def test_values_at_the_cutoff_do_change_the_prompt():
    changed = {a: f.copy() for a, f in FRAMES.items()}
    changed["ETH"].loc[CUTOFF, "close"] *= 1.05
    assert make_prompt(changed, "ETH", CUTOFF, 7) != make_prompt(FRAMES, "ETH", CUTOFF, 7)


def test_format_answer_is_consistent():
    body = json.loads(format_answer("SOL", 7, 0.4999, 1.234).split(">", 1)[1].split("<")[0])
    assert body == {"asset": "SOL", "horizon_days": 7, "direction": "up", "p_up": 0.5, "return_pct": 1.23}
    body = json.loads(format_answer("SOL", 1, 0.31, -2.0)[8:-9])
    assert body["direction"] == "down" and body["p_up"] == 0.31


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cutoff_pos=st.integers(MIN_HISTORY - 1, 300), offset=st.integers(1, 40), factor=st.floats(0.2, 5.0))
def test_build_samples_never_read_after_the_cutoff(cutoff_pos, offset, factor):
    cutoff = FRAMES["ETH"].index[cutoff_pos]
    day = cutoff + pd.Timedelta(days=offset)
    changed = {a: f.copy() for a, f in FRAMES.items()}
    for a in changed:  # a consistent rewrite of a later day (the series stays valid)
        changed[a].loc[day, ["open", "high", "low", "close", "quote_volume"]] *= factor
    pick = lambda frames: [s for s in build_samples(frames, ["ETH"], [1, 7], cutoff, cutoff)]  # noqa: E731
    before, after = pick(FRAMES), pick(changed)
    assert [s.prompt for s in before] == [s.prompt for s in after]
    assert [s.features for s in before] == [s.features for s in after]
    assert [s.realized_vol for s in before] == [s.realized_vol for s in after]


def test_onchain_growth_appears_when_present():
    frames = {a: f.copy() for a, f in FRAMES.items()}
    frames["ETH"]["tx_count"] = np.linspace(1000, 2000, len(frames["ETH"]))
    text = make_prompt(frames, "ETH", CUTOFF, 7)[1]["content"]
    assert re.search(r"on-chain 7d vs prior 30d: tx count \+\d+%", text)
