"""``csv:DIR``: a directory of Binance-kline CSVs named ``<ASSET>USDT.csv``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from cortex.data.frame import MARKET_COLUMNS, DataError
from cortex.data.sources.base import finish

ENV_VAR = "CORTEX_MARKET_DATA"
RENAME = {"quote_asset_volume": "quote_volume", "number_of_trades": "trades"}


def default_dir() -> Path | None:
    """The directory ``CORTEX_MARKET_DATA`` names, if it is set and exists."""
    value = os.environ.get(ENV_VAR)
    return Path(value) if value and Path(value).is_dir() else None


def read_kline_csv(path: Path) -> pd.DataFrame:
    """One kline CSV as an (unvalidated) frame indexed by day."""
    raw = pd.read_csv(path)
    raw = raw.rename(columns=RENAME)
    if "open_time" not in raw.columns:
        raise DataError(f"{path}: no open_time column; expected Binance kline columns")
    times = raw["open_time"]
    if pd.api.types.is_numeric_dtype(times):
        index = pd.to_datetime(times, unit="ms", utc=True)
    else:
        index = pd.to_datetime(times, utc=True, format="ISO8601")
    missing = [c for c in MARKET_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(f"{path}: missing columns {', '.join(missing)}")
    frame = raw[list(MARKET_COLUMNS)].astype(float)
    frame.index = pd.DatetimeIndex(index)
    return frame


class CsvSource:
    """Reads ``DIR/<ASSET><QUOTE>.csv`` for each asset; real data, never synthetic."""

    is_synthetic = False

    def __init__(self, directory: str | Path | None = None, quote: str = "USDT"):
        directory = Path(directory) if directory else default_dir()
        if directory is None:
            raise DataError(f"no CSV directory: use csv:DIR or set {ENV_VAR} to a directory of kline CSVs")
        if not directory.is_dir():
            raise DataError(f"CSV directory {directory} does not exist")
        self.directory = directory
        self.quote = quote
        self.name = f"csv:{directory}"

    def available(self) -> list[str]:
        return sorted(p.stem[: -len(self.quote)] for p in self.directory.glob(f"*{self.quote}.csv"))

    def load(self, assets: Sequence[str], start=None, end=None) -> dict[str, pd.DataFrame]:
        frames = {}
        for asset in assets:
            path = self.directory / f"{asset}{self.quote}.csv"
            if not path.exists():
                have = ", ".join(self.available()) or "none"
                raise DataError(f"no {path.name} in {self.directory} (assets there: {have})")
            frames[asset] = finish(read_kline_csv(path), asset, start, end)
        return frames
