"""The binance source against a local server that answers like /api/v3/klines."""

import pandas as pd
import pytest

from fake_services import FakeBinance, serve
from cortex.data.frame import DataError
from cortex.retry import RetryPolicy
from cortex.data.sources import BinanceSource, SyntheticSource

FAST = RetryPolicy(retries=3, backoff=0.01, max_backoff=0.05)


@pytest.fixture(scope="module")
def market():
    today = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()
    src = SyntheticSource(seed=11)
    btc = src.load(["BTC"], today - pd.Timedelta(days=1500), today)["BTC"]  # includes today's candle
    eth = src.load(["ETH"], "2024-03-01", today)["ETH"]  # "listed" on 2024-03-01
    return {"BTCUSDT": btc, "ETHUSDT": eth}, today


def source(url, tmp_path, **kw):
    return BinanceSource(base_url=url, cache_dir=tmp_path / "cache", policy=FAST, rate_limit=1000, **kw)


def test_paginates_and_matches_the_server(market, tmp_path):
    frames, today = market
    fake = FakeBinance(frames)
    start = today - pd.Timedelta(days=1400)
    with serve(fake) as url:
        got = source(url, tmp_path).load(["BTC"], start, today - pd.Timedelta(days=1))["BTC"]
    assert len(got) == 1400 and got.index[0] == start
    assert len(fake.requests) == 2  # 1000 + 400 rows
    q = fake.requests[0]["query"]
    assert q["symbol"] == "BTCUSDT" and q["interval"] == "1d" and q["limit"] == "1000"
    want = frames["BTCUSDT"].loc[start : today - pd.Timedelta(days=1)]
    assert (abs(got.close.to_numpy() - want.close.to_numpy()) < 1e-6).all()


def test_cache_never_fetches_a_day_twice(market, tmp_path):
    frames, today = market
    fake = FakeBinance(frames)
    a, b = today - pd.Timedelta(days=300), today - pd.Timedelta(days=100)
    with serve(fake) as url:
        source(url, tmp_path).load(["BTC"], a, b)
        n = len(fake.requests)
        again = source(url, tmp_path).load(["BTC"], a + pd.Timedelta(days=10), b)["BTC"]
        assert len(fake.requests) == n and len(again) == 191  # answered from disk
        wider = source(url, tmp_path).load(["BTC"], a, b + pd.Timedelta(days=20))["BTC"]
    assert len(wider) == 221
    new = fake.requests[n:]
    assert len(new) == 1 and int(new[0]["query"]["startTime"]) == (b + pd.Timedelta(days=1)).value // 10**6


def test_days_before_listing_are_remembered_and_today_is_never_returned(market, tmp_path):
    frames, today = market
    fake = FakeBinance(frames)
    with serve(fake) as url:
        eth = source(url, tmp_path).load(["ETH"], "2024-01-01", today + pd.Timedelta(days=5))["ETH"]
        n = len(fake.requests)
        source(url, tmp_path).load(["ETH"], "2024-01-01", today - pd.Timedelta(days=1))
    assert eth.index[0] == pd.Timestamp("2024-03-01")
    assert eth.index[-1] == today - pd.Timedelta(days=1)  # the unfinished day is left out
    assert len(fake.requests) == n  # the empty January/February were not asked for again


def test_retries_429_then_succeeds(market, tmp_path):
    frames, today = market
    fake = FakeBinance(frames, fail_first=2)
    with serve(fake) as url:
        got = source(url, tmp_path).load(["BTC"], today - pd.Timedelta(days=20), today - pd.Timedelta(days=11))
    assert len(got["BTC"]) == 10 and len(fake.requests) == 3


def test_gives_up_with_a_clear_error(market, tmp_path):
    frames, today = market
    with serve(FakeBinance(frames, fail_first=50)) as url:
        with pytest.raises(DataError, match="gave up after 4 attempts .*429"):
            source(url, tmp_path).load(["BTC"], today - pd.Timedelta(days=5), today - pd.Timedelta(days=2))
    with serve(FakeBinance(frames)) as url:
        with pytest.raises(DataError, match="HTTP 400 .*Invalid symbol"):
            source(url, tmp_path).load(["NOPE"], today - pd.Timedelta(days=5), today - pd.Timedelta(days=2))
