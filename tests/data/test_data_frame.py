"""The one table shape and its checks: a broken series is never handed on silently."""

import numpy as np
import pandas as pd
import pytest

from cortex.data.frame import DataError, check_frame, normalise_index, validate_frame
from cortex.data.sources import SyntheticSource
from cortex.errors import CortexError


@pytest.fixture(scope="module")
def frame():
    return SyntheticSource(seed=3).load(["BTC"], "2023-01-01", "2023-03-31")["BTC"]


def test_clean_frame_passes(frame):
    report = check_frame(frame, "BTC")
    assert report.ok and report.rows == 90 and report.first == "2023-01-01" and report.last == "2023-03-31"
    assert validate_frame(frame, "BTC") is frame


def test_gap_is_reported(frame):
    broken = frame.drop(frame.index[10:13])
    report = check_frame(broken, "BTC")
    assert report.gaps == [("2023-01-10", "2023-01-14")]
    with pytest.raises(DataError, match="gaps 1 .2023-01-10..2023-01-14"):
        validate_frame(broken, "BTC")


def test_duplicate_day_is_reported(frame):
    broken = pd.concat([frame, frame.iloc[[5]]]).sort_index()
    assert check_frame(broken, "BTC").duplicate_days == ["2023-01-06"]
    with pytest.raises(DataError, match="duplicate days"):
        validate_frame(broken)


def test_non_positive_and_non_finite_prices(frame):
    broken = frame.copy()
    broken.iloc[3, broken.columns.get_loc("close")] = 0.0
    broken.iloc[7, broken.columns.get_loc("open")] = np.nan
    report = check_frame(broken, "BTC")
    assert report.non_positive_prices == ["2023-01-04"]
    assert report.non_finite == ["2023-01-08"]
    assert not report.ok


def test_inconsistent_ohlc(frame):
    broken = frame.copy()
    day = broken.index[20]
    broken.loc[day, "high"] = min(broken.loc[day, "open"], broken.loc[day, "close"]) * 0.99
    broken.loc[broken.index[21], "low"] = max(broken.iloc[21]["open"], broken.iloc[21]["close"]) * 1.01
    report = check_frame(broken, "BTC")
    assert report.inconsistent_ohlc == ["2023-01-21", "2023-01-22"]
    with pytest.raises(CortexError, match="inconsistent OHLC"):  # a CortexError: one line for the CLI
        validate_frame(broken, "BTC")


def test_missing_columns(frame):
    report = check_frame(frame.drop(columns=["trades"]), "BTC")
    assert report.missing_columns == ["trades"]
    assert check_frame(frame[["close"]].rename(columns={"close": "tx_count"}), require_market=False).ok


def test_normalise_index_from_utc_timestamps(frame):
    shifted = frame.copy()
    shifted.index = shifted.index.tz_localize("UTC")
    out = normalise_index(shifted)
    assert out.index.tz is None and out.index.name == "day" and (out.index == frame.index).all()
