"""The flipside source: SQL templates, the key requirement, and the JSON-RPC flow on 127.0.0.1."""

import pytest

from fake_services import FakeFlipside, serve
from cortex.data.frame import DataError
from cortex.retry import RetryPolicy
from cortex.data.sources import CombinedSource, FlipsideSource, SyntheticSource
from cortex.data.sources.flipside import queries

DAYS = [f"2024-01-0{i}" for i in range(1, 6)]
TX = (["DAY", "TX_COUNT", "ACTIVE_ADDRESSES", "FEES"], [[d, 1000 + i, 300 + i, 5.5] for i, d in enumerate(DAYS)])
DEX = (["DAY", "DEX_VOLUME"], [[d, 1e6 * (i + 1)] for i, d in enumerate(DAYS)])


def test_sql_templates_per_chain():
    eth = queries("ETH", "2024-01-01", "2024-01-31")
    assert "FROM ethereum.core.fact_transactions" in eth[0] and "COUNT(DISTINCT from_address)" in eth[0]
    assert "FROM ethereum.defi.ez_dex_swaps" in eth[1] and "SUM(amount_in_usd)" in eth[1]
    assert "block_timestamp >= '2024-01-01' AND block_timestamp < '2024-02-01'" in eth[0]
    assert "near.core.fact_transactions" in queries("NEAR", "2024-01-01", "2024-01-02")[0]
    assert len(queries("BTC", "2024-01-01", "2024-01-02")) == 1  # no DEX table on bitcoin
    with pytest.raises(DataError, match="no chain known for DOGE"):
        queries("DOGE", "2024-01-01", "2024-01-02")


def test_without_a_key_a_clear_error_never_fake_data(monkeypatch):
    monkeypatch.delenv("FLIPSIDE_API_KEY", raising=False)
    with pytest.raises(DataError, match="set FLIPSIDE_API_KEY"):
        FlipsideSource().load(["ETH"], "2024-01-01", "2024-01-05")


def flipside(url, tmp_path):
    return FlipsideSource(api_key="k", base_url=url, cache_dir=tmp_path, poll_interval=0.01,
                          rate_limit=1000, policy=RetryPolicy(retries=1, backoff=0.01))


def test_query_run_poll_and_pages(tmp_path):
    fake = FakeFlipside({"fact_transactions": TX, "ez_dex_swaps": DEX}, page_size=2)
    with serve(fake) as url:
        src = flipside(url, tmp_path)
        eth = src.load(["ETH"], "2024-01-01", "2024-01-05")["ETH"]
        assert src.runs == 2
        again = flipside(url, tmp_path)
        again.load(["ETH"], "2024-01-01", "2024-01-05")
        assert again.runs == 0  # finished days come from the cache
    assert list(eth.columns) == ["tx_count", "active_addresses", "dex_volume", "fees"]
    assert eth.tx_count.tolist() == [1000, 1001, 1002, 1003, 1004] and eth.dex_volume.iloc[-1] == 5e6
    methods = [r["body"]["method"] for r in fake.requests]
    assert methods.count("createQueryRun") == 2 and methods.count("getQueryRunResults") == 6  # 3 pages each
    create = next(r for r in fake.requests if r["body"]["method"] == "createQueryRun")
    assert create["body"]["params"][0]["dataSource"] == "snowflake-default"


def test_broken_series_is_reported(tmp_path):
    with serve(FakeFlipside({"fact_transactions": (TX[0], [TX[1][0], TX[1][2]]), "ez_dex_swaps": DEX})) as url:
        with pytest.raises(DataError, match=r"ETH: tx_count missing on 1 days \(2024-01-02\)"):
            flipside(url, tmp_path).load(["ETH"], "2024-01-01", "2024-01-03")


def test_combined_with_prices(tmp_path):
    with serve(FakeFlipside({"fact_transactions": TX, "ez_dex_swaps": DEX})) as url:
        combined = CombinedSource([SyntheticSource(seed=2), flipside(url, tmp_path)])
        eth = combined.load(["ETH"], "2024-01-01", "2024-01-05")["ETH"]
    assert {"close", "tx_count", "dex_volume"} <= set(eth.columns) and eth.active_addresses.iloc[0] == 300
