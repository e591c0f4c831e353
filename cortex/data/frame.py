"""The one table shape every source returns, and the checks every series passes.

A market frame is a ``pandas.DataFrame`` per asset, indexed by UTC day (a tz-naive
``DatetimeIndex`` at midnight, named ``day``, sorted, one row per day) with the
Binance-kline columns in :data:`MARKET_COLUMNS` and, where a source provides them,
the on-chain columns in :data:`ONCHAIN_COLUMNS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cortex.errors import CortexError

MARKET_COLUMNS: tuple[str, ...] = (
    "open",
    "high",
    "low",
    "close",
    "volume",  # base asset
    "quote_volume",  # USDT
    "trades",
    "taker_buy_base",
    "taker_buy_quote",
)
ONCHAIN_COLUMNS: tuple[str, ...] = ("tx_count", "active_addresses", "dex_volume", "fees")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")


class DataError(CortexError):
    """A series is broken (gaps, duplicates, bad prices) or a source cannot deliver it."""


@dataclass
class FrameReport:
    """What :func:`check_frame` found in one asset's series; empty lists mean clean."""

    asset: str
    rows: int
    first: str | None
    last: str | None
    missing_columns: list[str] = field(default_factory=list)
    duplicate_days: list[str] = field(default_factory=list)
    gaps: list[tuple[str, str]] = field(default_factory=list)  # (last day before, first day after)
    non_positive_prices: list[str] = field(default_factory=list)
    inconsistent_ohlc: list[str] = field(default_factory=list)
    non_finite: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.missing_columns
            or self.duplicate_days
            or self.gaps
            or self.non_positive_prices
            or self.inconsistent_ohlc
            or self.non_finite
        )

    def summary(self) -> str:
        """One line naming every problem with its first few days."""

        def few(items: list) -> str:
            shown = ", ".join(str(i) for i in items[:3])
            return f"{len(items)} ({shown}{', …' if len(items) > 3 else ''})"

        parts = []
        if self.missing_columns:
            parts.append(f"missing columns {', '.join(self.missing_columns)}")
        if self.duplicate_days:
            parts.append(f"duplicate days {few(self.duplicate_days)}")
        if self.gaps:
            parts.append(f"gaps {few([f'{a}..{b}' for a, b in self.gaps])}")
        if self.non_positive_prices:
            parts.append(f"non-positive prices on {few(self.non_positive_prices)}")
        if self.inconsistent_ohlc:
            parts.append(f"inconsistent OHLC on {few(self.inconsistent_ohlc)}")
        if self.non_finite:
            parts.append(f"missing or non-finite values on {few(self.non_finite)}")
        return f"{self.asset}: " + ("ok" if not parts else "; ".join(parts))


def _days(index: pd.Index) -> list[str]:
    return [pd.Timestamp(d).strftime("%Y-%m-%d") for d in index]


def check_frame(frame: pd.DataFrame, asset: str = "?", require_market: bool = True) -> FrameReport:
    """Inspect a frame without changing it: gaps, duplicate days, bad prices, bad OHLC."""
    idx = pd.DatetimeIndex(frame.index)
    report = FrameReport(
        asset=asset,
        rows=len(frame),
        first=_days(idx[:1])[0] if len(idx) else None,
        last=_days(idx[-1:])[0] if len(idx) else None,
    )
    if require_market:
        report.missing_columns = [c for c in MARKET_COLUMNS if c not in frame.columns]
    report.duplicate_days = sorted(set(_days(idx[idx.duplicated()])))
    unique = idx[~idx.duplicated()].sort_values()
    if len(unique) > 1:
        step = (unique[1:] - unique[:-1]).days
        where = np.flatnonzero(np.asarray(step) != 1)
        report.gaps = [(_days(unique[i : i + 1])[0], _days(unique[i + 1 : i + 2])[0]) for i in where]
    prices = [c for c in PRICE_COLUMNS if c in frame.columns]
    if prices:
        values = frame[prices].to_numpy(dtype=float)
        bad = ~np.isfinite(values).all(axis=1)
        report.non_finite = _days(idx[bad])
        report.non_positive_prices = _days(idx[(values <= 0).any(axis=1) & ~bad])
    if all(c in frame.columns for c in PRICE_COLUMNS):
        o, h, lo, c = (frame[k].to_numpy(dtype=float) for k in PRICE_COLUMNS)
        tol = 1e-9 * np.maximum(np.abs(h), 1.0)
        wrong = (h + tol < np.maximum(o, c)) | (lo - tol > np.minimum(o, c)) | (h + tol < lo)
        report.inconsistent_ohlc = _days(idx[wrong])
    return report


def validate_frame(frame: pd.DataFrame, asset: str = "?", require_market: bool = True) -> pd.DataFrame:
    """Return ``frame`` unchanged if it is a clean daily series; raise :class:`DataError` if not."""
    report = check_frame(frame, asset, require_market)
    if not report.ok:
        raise DataError(f"broken series from the source: {report.summary()}")
    return frame


def normalise_index(frame: pd.DataFrame) -> pd.DataFrame:
    """Index by tz-naive UTC midnight days named ``day``, sorted (duplicates are kept for the check)."""
    idx = pd.DatetimeIndex(frame.index)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    frame = frame.copy()
    frame.index = idx.normalize().rename("day")
    return frame.sort_index(kind="stable")


def to_day(value) -> pd.Timestamp:
    """A day as a tz-naive midnight ``Timestamp`` (from a string, date or timestamp)."""
    ts = pd.Timestamp(value)
    if ts.tz is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize()


def iso(day) -> str:
    return to_day(day).strftime("%Y-%m-%d")
