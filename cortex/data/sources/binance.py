"""``binance``: daily candles from Binance's public klines endpoint (no key needed).

Requests go through ``asyncio-throttle`` and are retried with backoff on 418/429/5xx.
Every complete UTC day that was fetched, and every day the exchange answered
without a candle (before a listing), is kept on disk per asset, so the same day
is never asked for twice. Today's unfinished candle is never cached nor returned.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Sequence

import httpx
import pandas as pd
from asyncio_throttle import Throttler

from cortex.atomic import write_text
from cortex.data.frame import MARKET_COLUMNS, DataError, to_day
from cortex.data.http import DATA_POLICY, request
from cortex.data.sources.base import cache_root, finish
from cortex.retry import RetryPolicy

DEFAULT_URL = "https://api.binance.com"
URL_ENV = "CORTEX_BINANCE_URL"
DAY_MS = 86_400_000
DEFAULT_START = "2018-01-01"
KLINE_FIELDS = ("open_time", "open", "high", "low", "close", "volume", "close_time",
                "quote_volume", "trades", "taker_buy_base", "taker_buy_quote")


def _ms(day: pd.Timestamp) -> int:
    return int(day.value // 1_000_000)


def _runs(days: list[pd.Timestamp]) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Consecutive days grouped into inclusive (first, last) runs."""
    runs: list[list[pd.Timestamp]] = []
    for day in sorted(days):
        if runs and (day - runs[-1][1]).days == 1:
            runs[-1][1] = day
        else:
            runs.append([day, day])
    return [(a, b) for a, b in runs]


class DayCache:
    """One asset's fetched candles (CSV) and known-empty days (JSON), written atomically."""

    def __init__(self, root: Path, symbol: str):
        self.rows_path = root / f"{symbol}-1d.csv"
        self.absent_path = root / f"{symbol}-1d.absent.json"

    def rows(self) -> pd.DataFrame:
        if not self.rows_path.exists():
            return pd.DataFrame(columns=list(KLINE_FIELDS[:6]) + list(KLINE_FIELDS[7:]))
        return pd.read_csv(self.rows_path)

    def absent(self) -> set[pd.Timestamp]:
        if not self.absent_path.exists():
            return set()
        out = set()
        for first, last in json.loads(self.absent_path.read_text()):
            out.update(pd.date_range(first, last, freq="D"))
        return out

    def save(self, rows: pd.DataFrame, absent: set[pd.Timestamp]) -> None:
        rows = rows.drop_duplicates("open_time", keep="last").sort_values("open_time")
        write_text(self.rows_path, rows.to_csv(index=False))
        runs = [[a.strftime("%Y-%m-%d"), b.strftime("%Y-%m-%d")] for a, b in _runs(list(absent))]
        write_text(self.absent_path, json.dumps(runs))


class BinanceSource:
    """Daily ``<ASSET>USDT`` candles from ``/api/v3/klines``; real data, never synthetic."""

    name = "binance"
    is_synthetic = False

    def __init__(self, base_url: str | None = None, cache_dir: str | Path | None = None,
                 quote: str = "USDT", rate_limit: float = 10.0, page_limit: int = 1000,
                 policy: RetryPolicy | None = None, timeout: float = 30.0):
        self.base_url = (base_url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        self.cache_dir = Path(cache_dir) if cache_dir else cache_root() / "binance"
        self.quote = quote
        self.rate_limit = rate_limit
        self.page_limit = page_limit
        self.policy = policy or DATA_POLICY
        self.timeout = timeout
        self.requests = 0  # kline requests sent (for tests and logs)

    def load(self, assets: Sequence[str], start=None, end=None) -> dict[str, pd.DataFrame]:
        today = to_day(pd.Timestamp.now(tz="UTC"))
        start = to_day(start or DEFAULT_START)
        end = min(to_day(end), today - pd.Timedelta(days=1)) if end else today - pd.Timedelta(days=1)
        if end < start:
            raise DataError(f"binance: empty range {start.date()}..{end.date()} (only complete days exist)")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        rows = asyncio.run(self._load_all(list(assets), start, end))
        frames = {}
        for asset, raw in rows.items():
            frame = raw.copy()
            frame.index = pd.to_datetime(frame.pop("open_time"), unit="ms")
            frames[asset] = finish(frame[list(MARKET_COLUMNS)].astype(float), asset, start, end)
        return frames

    async def _load_all(self, assets, start, end) -> dict[str, pd.DataFrame]:
        throttler = Throttler(rate_limit=self.rate_limit, period=1.0)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout) as client:
            jobs = [self._load_one(client, throttler, a, start, end) for a in assets]
            return dict(zip(assets, await asyncio.gather(*jobs)))

    async def _load_one(self, client, throttler, asset, start, end) -> pd.DataFrame:
        symbol = f"{asset}{self.quote}"
        cache = DayCache(self.cache_dir, symbol)
        rows, absent = cache.rows(), cache.absent()
        have = set(pd.to_datetime(rows["open_time"], unit="ms")) if len(rows) else set()
        wanted = pd.date_range(start, end, freq="D")
        missing = [d for d in wanted if d not in have and d not in absent]
        fetched = []
        for first, last in _runs(missing):
            got = await self._fetch(client, throttler, symbol, first, last)
            fetched.extend(got)
            days = {pd.Timestamp(r[0], unit="ms") for r in got}
            absent.update(d for d in pd.date_range(first, last, freq="D") if d not in days)
        if fetched:
            new = pd.DataFrame([r[:6] + r[7:11] for r in fetched],
                               columns=list(KLINE_FIELDS[:6]) + list(KLINE_FIELDS[7:]))
            rows = pd.concat([rows, new], ignore_index=True) if len(rows) else new
        if missing:
            cache.save(rows, absent)
        if not len(rows):
            raise DataError(f"binance: no daily candles for {symbol} between {start.date()} and {end.date()}")
        return rows

    async def _fetch(self, client, throttler, symbol, first, last) -> list[list]:
        """All complete daily candles of [first, last], page by page (``limit`` rows each)."""
        out: list[list] = []
        begin, stop = _ms(first), _ms(last) + DAY_MS - 1
        now_ms = int(time.time() * 1000)
        while begin <= stop:
            params = {"symbol": symbol, "interval": "1d", "startTime": begin, "endTime": stop,
                      "limit": self.page_limit}
            self.requests += 1
            resp = await request(client, throttler, "GET", "/api/v3/klines", self.policy,
                                 f"binance klines {symbol}", params=params)
            page = resp.json()
            if not isinstance(page, list):
                raise DataError(f"binance klines {symbol}: unexpected answer {str(page)[:120]}")
            out.extend(r for r in page if int(r[6]) < now_ms and _ms(first) <= int(r[0]) <= stop)
            if len(page) < self.page_limit:
                break
            begin = int(page[-1][0]) + DAY_MS
        return [[int(r[0])] + [float(x) for x in r[1:6]] + [int(r[6])] + [float(x) for x in r[7:11]]
                for r in out]
