"""Features of one asset at a cutoff day, computed from data up to that day only.

Everything here works on a :class:`History`: the columns of a frame already cut at the
cutoff (``frame.loc[:cutoff]``), as numpy arrays, of at most :data:`LOOKBACK` days. Nothing
after the cutoff can reach a feature because nothing after it is ever passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from cortex.data.frame import MARKET_COLUMNS, ONCHAIN_COLUMNS, DataError, iso, to_day

LOOKBACK = 100  # days of history kept per sample (90d drawdown + margin)
MIN_HISTORY = 91  # rows needed up to and including the cutoff
TABLE_DAYS = 10
RETURN_WINDOWS = (1, 3, 7, 14, 30)
VOL_WINDOW = 30  # days of log returns behind ``rms_vol`` and ``realized_vol``


@dataclass(frozen=True)
class History:
    """One asset's last days up to and including the cutoff: ``days[-1]`` is the cutoff (ISO)."""

    asset: str
    days: Sequence[str]  # ISO days, oldest first
    cols: dict[str, np.ndarray]

    @classmethod
    def cut(cls, frame: pd.DataFrame, asset: str, cutoff) -> "History":
        """Slice ``frame`` to days <= cutoff first, then keep the last LOOKBACK rows."""
        cutoff = to_day(cutoff)
        past = frame.loc[frame.index <= cutoff].tail(LOOKBACK)
        if past.empty or past.index[-1] != cutoff:
            raise DataError(f"{asset}: no row for the cutoff day {iso(cutoff)}")
        cols = {c: past[c].to_numpy(dtype=float) for c in past.columns}
        return cls(asset, list(past.index.strftime("%Y-%m-%d")), cols)

    @property
    def cutoff(self) -> str:
        return self.days[-1]

    def __len__(self) -> int:
        return len(self.days)


def _ret(close: np.ndarray, k: int) -> float:
    return (close[-1] / close[-1 - k] - 1.0) * 100.0


def _rms(logret: np.ndarray) -> float:
    return float(np.sqrt(np.mean(logret**2)))


def _growth(values: np.ndarray) -> float | None:
    """Mean of the last 7 days against the mean of the 30 days before, in percent."""
    recent, before = values[-7:], values[-37:-7]
    if len(before) < 30 or np.isnan(recent).any() or np.isnan(before).any() or before.mean() <= 0:
        return None
    return (recent.mean() / before.mean() - 1.0) * 100.0


def rms_vol(close: np.ndarray, window: int = VOL_WINDOW) -> float:
    """RMS daily log return over the last ``window`` returns, as a fraction."""
    return _rms(np.diff(np.log(close[-window - 1 :])))


def compute(hist: History, btc: History | None = None) -> dict:
    """The feature dict of ``hist`` (percent units unless named otherwise); None where unknown."""
    if len(hist) < MIN_HISTORY:
        raise DataError(f"{hist.asset}: {len(hist)} days up to {hist.cutoff}; need {MIN_HISTORY}")
    c, h, qv = hist.cols["close"], hist.cols["high"], hist.cols["quote_volume"]
    logret = np.diff(np.log(c))
    f: dict = {"close": float(c[-1])}
    for k in RETURN_WINDOWS:
        f[f"ret_{k}d"] = _ret(c, k)
    f["vol_7d"] = _rms(logret[-7:]) * 100.0
    f["vol_30d"] = _rms(logret[-VOL_WINDOW:]) * 100.0
    f["volume_chg"] = _growth(qv)
    f["taker_ratio"] = float(hist.cols["taker_buy_quote"][-7:].sum() / max(qv[-7:].sum(), 1e-12))
    f["dd_30d"] = (c[-1] / h[-30:].max() - 1.0) * 100.0
    f["dd_90d"] = (c[-1] / h[-90:].max() - 1.0) * 100.0
    f["rel_btc_7d"] = f["rel_btc_30d"] = None
    if btc is not None and hist.asset != "BTC" and len(btc) > 30 and btc.cutoff == hist.cutoff:
        f["rel_btc_7d"] = f["ret_7d"] - _ret(btc.cols["close"], 7)
        f["rel_btc_30d"] = f["ret_30d"] - _ret(btc.cols["close"], 30)
    for col in ONCHAIN_COLUMNS:
        if col in hist.cols:
            f[f"{col}_chg"] = _growth(hist.cols[col])
    return f


def table(hist: History, days: int = TABLE_DAYS) -> list[tuple[str, float, float, float]]:
    """(day of month, close, return %, quote-volume change %) for the last ``days`` days."""
    c, qv = hist.cols["close"], hist.cols["quote_volume"]
    n = min(days, len(c) - 1)
    rows = []
    for i in range(len(c) - n, len(c)):
        ret = (c[i] / c[i - 1] - 1.0) * 100.0
        vchg = (qv[i] / qv[i - 1] - 1.0) * 100.0 if qv[i - 1] > 0 else float("nan")
        rows.append((hist.days[i][8:], float(c[i]), ret, vchg))
    return rows


# ---- number formats: few digits, the same strings in prompts and in teacher reasoning ----


def price(x: float) -> str:
    """Four significant digits (whole numbers from 1000), never scientific: 63776, 1234, 3.457, 0.1235."""
    if not math.isfinite(x) or x <= 0:
        return "n/a"
    decimals = max(0, 3 - math.floor(math.log10(x)))
    return f"{x:.{decimals}f}"


def pct(x: float | None, digits: int = 1) -> str:
    """Signed percent with one decimal (none past 100): +2.1%, -12.0%, +340%."""
    if x is None or not math.isfinite(x):
        return "n/a"
    if abs(x) >= 100:
        digits = 0
    return f"{x:+.{digits}f}%"


def num(x: float | None, digits: int = 1, sign: bool = True) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


__all__ = ["History", "compute", "table", "rms_vol", "price", "pct", "num", "LOOKBACK",
           "MIN_HISTORY", "TABLE_DAYS", "VOL_WINDOW", "MARKET_COLUMNS"]
