"""Market-data sources behind one interface, chosen by a spec string.

=====================  =====================================================================
spec                   source
=====================  =====================================================================
``synthetic[:SEED]``   seeded synthetic market (the offline default)
``csv[:DIR]``          Binance-kline CSVs ``DIR/<ASSET>USDT.csv`` (default: ``$CORTEX_MARKET_DATA``)
``binance``            Binance public klines REST API (``$CORTEX_BINANCE_URL`` overrides the URL)
``flipside``           on-chain metrics through Flipside's SQL API (``$FLIPSIDE_API_KEY``)
``A+B``                prices from A, extra (on-chain) columns from B joined by day
=====================  =====================================================================
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from cortex.data.frame import DataError, validate_frame
from cortex.data.sources.base import Source, cache_root, parse_assets
from cortex.data.sources.binance import BinanceSource
from cortex.data.sources.csvdir import CsvSource
from cortex.data.sources.flipside import FlipsideSource
from cortex.data.sources.synthetic import SyntheticParams, SyntheticSource

DEFAULT_SPEC = "synthetic"

__all__ = ["Source", "CombinedSource", "BinanceSource", "CsvSource", "FlipsideSource",
           "SyntheticSource", "SyntheticParams", "get_source", "parse_assets", "cache_root"]


class CombinedSource:
    """Prices from the first source; the others add their columns, joined on the day."""

    def __init__(self, parts: Sequence[Source]):
        self.parts = list(parts)
        self.name = "+".join(p.name for p in self.parts)
        self.is_synthetic = any(p.is_synthetic for p in self.parts)

    def load(self, assets: Sequence[str], start=None, end=None) -> dict[str, pd.DataFrame]:
        frames = self.parts[0].load(assets, start, end)
        if start is None:
            start = min(f.index[0] for f in frames.values())
        if end is None:
            end = max(f.index[-1] for f in frames.values())
        for part in self.parts[1:]:
            extra = part.load(assets, start, end)
            for asset, frame in frames.items():
                cols = [c for c in extra[asset].columns if c not in frame.columns]
                joined = frame.join(extra[asset][cols], how="left")
                frames[asset] = validate_frame(joined, asset)
        return frames


def get_source(spec: str | None = None, seed: int | None = None) -> Source:
    """The source a spec string names (see the module docstring)."""
    spec = (spec or DEFAULT_SPEC).strip()
    if "+" in spec:
        return CombinedSource([get_source(part, seed) for part in spec.split("+")])
    kind, _, arg = spec.partition(":")
    kind = kind.lower()
    if kind == "synthetic":
        return SyntheticSource(seed=int(arg) if arg else (seed or 0))
    if kind == "csv":
        return CsvSource(arg or None)
    if kind == "binance":
        return BinanceSource(base_url=arg or None)
    if kind == "flipside":
        return FlipsideSource()
    raise DataError(f"unknown source {spec!r}: use synthetic, csv:DIR, binance, flipside or A+B")
