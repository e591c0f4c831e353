"""csv:DIR, source specs and combined sources (no network, no ../shared needed)."""

from pathlib import Path

import pandas as pd
import pytest

from cortex.data.frame import MARKET_COLUMNS, DataError
from cortex.data.sources import (
    BinanceSource,
    CombinedSource,
    CsvSource,
    FlipsideSource,
    SyntheticSource,
    get_source,
    parse_assets,
)


def write_kline_csv(frame: pd.DataFrame, path: Path) -> None:
    """The format of ../shared/data/market/*.csv (Binance kline columns)."""
    out = pd.DataFrame({
        "open_time": [d.strftime("%Y-%m-%d 00:00:00+00:00") for d in frame.index],
        "open": frame.open, "high": frame.high, "low": frame.low, "close": frame.close,
        "volume": frame.volume,
        "close_time": [int(d.value // 1_000_000) + 86_399_999 for d in frame.index],
        "quote_asset_volume": frame.quote_volume, "trades": frame.trades.astype(int),
        "taker_buy_base": frame.taker_buy_base, "taker_buy_quote": frame.taker_buy_quote,
    })
    out.to_csv(path, index=False)


@pytest.fixture()
def market_dir(tmp_path):
    frames = SyntheticSource(seed=4).load(["BTC", "ETH"], "2023-01-01", "2023-12-31")
    for asset, frame in frames.items():
        write_kline_csv(frame, tmp_path / f"{asset}USDT.csv")
    return tmp_path, frames


def test_csv_round_trip(market_dir):
    directory, frames = market_dir
    src = get_source(f"csv:{directory}")
    assert isinstance(src, CsvSource) and not src.is_synthetic and src.available() == ["BTC", "ETH"]
    got = src.load(["BTC", "ETH"], "2023-02-01", "2023-02-28")
    assert tuple(got["ETH"].columns) == MARKET_COLUMNS and len(got["ETH"]) == 28
    pd.testing.assert_frame_equal(got["BTC"], frames["BTC"].loc["2023-02-01":"2023-02-28"], check_freq=False,
                                  check_index_type=False, rtol=1e-9)


def test_csv_default_dir_from_env(market_dir, monkeypatch):
    directory, _ = market_dir
    monkeypatch.setenv("CORTEX_MARKET_DATA", str(directory))
    assert get_source("csv").directory == directory
    monkeypatch.delenv("CORTEX_MARKET_DATA")
    with pytest.raises(DataError, match="CORTEX_MARKET_DATA"):
        get_source("csv")


def test_csv_missing_asset_and_broken_file(market_dir):
    directory, _ = market_dir
    with pytest.raises(DataError, match=r"no DOGEUSDT.csv .*assets there: BTC, ETH"):
        CsvSource(directory).load(["DOGE"])
    raw = pd.read_csv(directory / "ETHUSDT.csv")
    raw = raw.drop(index=[40, 41])  # a two-day gap
    raw.to_csv(directory / "ETHUSDT.csv", index=False)
    with pytest.raises(DataError, match="ETH: gaps"):
        CsvSource(directory).load(["ETH"])


def test_specs():
    assert isinstance(get_source(None), SyntheticSource)  # the offline default
    assert get_source("synthetic", seed=9).params.seed == 9
    assert isinstance(get_source("binance"), BinanceSource)
    assert get_source("binance:http://127.0.0.1:9").base_url == "http://127.0.0.1:9"
    both = get_source("synthetic+flipside")
    assert isinstance(both, CombinedSource) and isinstance(both.parts[1], FlipsideSource)
    assert both.is_synthetic and both.name == "synthetic(seed=0)+flipside"
    with pytest.raises(DataError, match="unknown source"):
        get_source("yahoo")
    assert parse_assets(" btc, ETH ,btc") == ["BTC", "ETH"]
    with pytest.raises(DataError):
        parse_assets(" , ")


class _OnChain:
    name, is_synthetic = "fake-onchain", False

    def load(self, assets, start, end):
        days = pd.date_range(start, end, freq="D", name="day")
        return {a: pd.DataFrame({"tx_count": range(len(days)), "close": 1.0}, index=days) for a in assets}


def test_combined_source_joins_onchain_columns_by_day():
    combined = CombinedSource([SyntheticSource(seed=1), _OnChain()])
    frames = combined.load(["ETH"], "2023-01-01", "2023-01-31")
    eth = frames["ETH"]
    assert list(eth.columns) == list(MARKET_COLUMNS) + ["tx_count"]  # prices never overwritten
    assert eth.tx_count.iloc[-1] == 30 and eth.close.iloc[0] != 1.0
