"""The interface every market-data source implements, and the shared finishing step."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import pandas as pd

from cortex.data.frame import DataError, normalise_index, to_day, validate_frame


@runtime_checkable
class Source(Protocol):
    """A source of daily frames. ``load`` returns one validated frame per asset."""

    name: str
    is_synthetic: bool

    def load(self, assets: Sequence[str], start=None, end=None) -> dict[str, pd.DataFrame]: ...


def cache_root() -> Path:
    """Where sources and teachers keep their on-disk caches (``CORTEX_CACHE`` or ~/.cache/cortex)."""
    return Path(os.environ.get("CORTEX_CACHE", Path.home() / ".cache" / "cortex"))


def clip_days(frame: pd.DataFrame, start=None, end=None) -> pd.DataFrame:
    if start is not None:
        frame = frame.loc[frame.index >= to_day(start)]
    if end is not None:
        frame = frame.loc[frame.index <= to_day(end)]
    return frame


def finish(frame: pd.DataFrame, asset: str, start=None, end=None, require_market=True) -> pd.DataFrame:
    """Normalise the index, clip to [start, end], and refuse a broken or empty series."""
    frame = clip_days(normalise_index(frame), start, end)
    if frame.empty:
        raise DataError(f"{asset}: no rows between {start or 'the start'} and {end or 'the end'}")
    return validate_frame(frame, asset, require_market)


def parse_assets(assets: str | Sequence[str]) -> list[str]:
    """``"btc, ETH"`` or ``["btc", "ETH"]`` -> ``["BTC", "ETH"]`` (order kept, duplicates dropped)."""
    items = assets.split(",") if isinstance(assets, str) else list(assets)
    out: list[str] = []
    for item in items:
        name = item.strip().upper()
        if name and name not in out:
            out.append(name)
    if not out:
        raise DataError("no assets given: pass them as BTC,ETH,…")
    return out
