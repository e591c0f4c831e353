"""``flipside``: daily on-chain metrics from Flipside's SQL API (needs ``FLIPSIDE_API_KEY``).

Two SQL templates per chain: transactions, active addresses and fees from
``<chain>.core.fact_transactions``, and DEX volume in USD from
``<chain>.defi.ez_dex_swaps``. Queries run through Flipside's JSON-RPC API
(``createQueryRun`` → ``getQueryRun`` until it succeeds → ``getQueryRunResults``
page by page). Results of finished days are cached on disk by the SQL's hash.

On its own this source returns only the on-chain columns; combine it with a price
source as ``binance+flipside`` or ``csv:DIR+flipside``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import httpx
import pandas as pd
from asyncio_throttle import Throttler

from cortex.atomic import write_text
from cortex.data.frame import ONCHAIN_COLUMNS, DataError, to_day
from cortex.data.http import DATA_POLICY, request
from cortex.data.sources.base import cache_root, finish
from cortex.retry import RetryPolicy

DEFAULT_URL = "https://api-v2.flipsidecrypto.xyz"
KEY_ENV, URL_ENV = "FLIPSIDE_API_KEY", "CORTEX_FLIPSIDE_URL"


@dataclass(frozen=True)
class Chain:
    """How one chain's tables name the sender, the fee and the swap size in USD."""

    schema: str
    sender: str | None = "from_address"
    fee: str = "tx_fee"
    dex_usd: str | None = "amount_in_usd"


CHAINS: dict[str, Chain] = {
    "ETH": Chain("ethereum"),
    "BNB": Chain("bsc"),
    "AVAX": Chain("avalanche"),
    "POL": Chain("polygon"),
    "MATIC": Chain("polygon"),
    "ARB": Chain("arbitrum"),
    "OP": Chain("optimism"),
    "NEAR": Chain("near", sender="tx_signer", fee="transaction_fee / 1e24"),
    "SOL": Chain("solana", sender="signers[0]::string", fee="fee / 1e9", dex_usd="swap_from_amount_usd"),
    "BTC": Chain("bitcoin", sender=None, fee="fee", dex_usd=None),
}

TX_SQL = """SELECT date_trunc('day', block_timestamp)::date AS day,
  COUNT(*) AS tx_count,
  {active} AS active_addresses,
  SUM({fee}) AS fees
FROM {schema}.core.fact_transactions
WHERE block_timestamp >= '{start}' AND block_timestamp < '{stop}'
GROUP BY 1 ORDER BY 1"""

DEX_SQL = """SELECT date_trunc('day', block_timestamp)::date AS day,
  SUM({dex_usd}) AS dex_volume
FROM {schema}.defi.ez_dex_swaps
WHERE block_timestamp >= '{start}' AND block_timestamp < '{stop}'
GROUP BY 1 ORDER BY 1"""


def queries(asset: str, start, end) -> list[str]:
    """The SQL this source runs for one asset over [start, end] (inclusive days)."""
    chain = CHAINS.get(asset)
    if chain is None:
        raise DataError(f"flipside: no chain known for {asset} (known: {', '.join(sorted(CHAINS))})")
    span = {"schema": chain.schema, "start": to_day(start).strftime("%Y-%m-%d"),
            "stop": (to_day(end) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")}
    active = f"COUNT(DISTINCT {chain.sender})" if chain.sender else "NULL"
    out = [TX_SQL.format(active=active, fee=chain.fee, **span)]
    if chain.dex_usd:
        out.append(DEX_SQL.format(dex_usd=chain.dex_usd, **span))
    return out


def _check_holes(frame: pd.DataFrame, asset: str) -> None:
    """A metric missing on a day inside its own first..last range is a hole: refuse it."""
    for col in frame.columns:
        values = frame[col]
        inside = values.loc[values.first_valid_index() : values.last_valid_index()]
        holes = inside.index[inside.isna()]
        if len(holes):
            days = ", ".join(d.strftime("%Y-%m-%d") for d in holes[:3])
            raise DataError(f"flipside {asset}: {col} missing on {len(holes)} days ({days})")


class FlipsideSource:
    """On-chain columns per asset; a clear error without ``FLIPSIDE_API_KEY``, never fake data."""

    name = "flipside"
    is_synthetic = False

    def __init__(self, api_key: str | None = None, base_url: str | None = None,
                 cache_dir: str | Path | None = None, rate_limit: float = 2.0,
                 poll_interval: float = 2.0, max_wait: float = 900.0,
                 policy: RetryPolicy | None = None):
        self.api_key = api_key or os.environ.get(KEY_ENV)
        self.base_url = (base_url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        self.cache_dir = Path(cache_dir) if cache_dir else cache_root() / "flipside"
        self.rate_limit, self.poll_interval, self.max_wait = rate_limit, poll_interval, max_wait
        self.policy = policy or DATA_POLICY
        self.runs = 0  # queries actually sent (not answered from the cache)

    def load(self, assets: Sequence[str], start=None, end=None) -> dict[str, pd.DataFrame]:
        if not self.api_key:
            raise DataError(f"flipside needs an API key: set {KEY_ENV} (free at flipsidecrypto.xyz)")
        if start is None or end is None:
            raise DataError("flipside: give both --start and --end")
        return asyncio.run(self._load_all(list(assets), start, end))

    async def _load_all(self, assets, start, end) -> dict[str, pd.DataFrame]:
        throttler = Throttler(rate_limit=self.rate_limit, period=1.0)
        headers = {"x-api-key": self.api_key, "content-type": "application/json"}
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=60) as client:
            out = {}
            finished = to_day(end) < to_day(pd.Timestamp.now(tz="UTC"))
            for asset in assets:
                sqls = queries(asset, start, end)
                parts = [await self._query(client, throttler, sql, finished) for sql in sqls]
                frame = pd.concat(parts, axis=1) if parts else pd.DataFrame()
                frame = frame.reindex(columns=[c for c in ONCHAIN_COLUMNS if c in frame.columns])
                _check_holes(frame.sort_index(), asset)
                out[asset] = finish(frame.astype(float), asset, start, end, require_market=False)
            return out

    async def _query(self, client, throttler, sql: str, cacheable: bool) -> pd.DataFrame:
        """One query's table; answered from the cache when the same SQL over finished days ran before."""
        path = self.cache_dir / f"{hashlib.sha256(sql.encode()).hexdigest()}.json"
        if cacheable and path.exists():
            table = json.loads(path.read_text())
        else:
            table = await self._run(client, throttler, sql)
            if cacheable:
                write_text(path, json.dumps(table))
        rows = table["rows"]
        if rows and isinstance(rows[0], dict):
            frame = pd.DataFrame(rows).rename(columns=str.lower)
        else:
            frame = pd.DataFrame(rows, columns=[c.lower() for c in table["columns"]])
        if "day" not in frame.columns:
            raise DataError(f"flipside: the query answered no day column ({', '.join(frame.columns)})")
        frame.index = pd.to_datetime(frame.pop("day"))
        return frame

    async def _rpc(self, client, throttler, method: str, params: dict) -> dict:
        body = {"jsonrpc": "2.0", "method": method, "params": [params], "id": 1}
        resp = await request(client, throttler, "POST", "/json-rpc", self.policy, f"flipside {method}", json=body)
        answer = resp.json()
        if answer.get("error"):
            raise DataError(f"flipside {method}: {answer['error'].get('message', answer['error'])}")
        return answer["result"]

    async def _run(self, client, throttler, sql: str) -> dict:
        self.runs += 1
        created = await self._rpc(client, throttler, "createQueryRun", {
            "resultTTLHours": 1, "maxAgeMinutes": 0, "sql": sql, "tags": {"source": "cortex"},
            "dataSource": "snowflake-default", "dataProvider": "flipside"})
        run_id = created["queryRun"]["id"]
        waited = 0.0
        while True:
            state = (await self._rpc(client, throttler, "getQueryRun", {"queryRunId": run_id}))["queryRun"]
            if state["state"] == "QUERY_STATE_SUCCESS":
                break
            if state["state"] in ("QUERY_STATE_FAILED", "QUERY_STATE_CANCELED"):
                raise DataError(f"flipside query {run_id} {state['state']}: {state.get('errorMessage')}")
            if waited >= self.max_wait:
                raise DataError(f"flipside query {run_id} still {state['state']} after {waited:.0f}s")
            await asyncio.sleep(self.poll_interval)
            waited += self.poll_interval
        columns, rows, page = [], [], 1
        while True:
            result = await self._rpc(client, throttler, "getQueryRunResults", {
                "queryRunId": run_id, "format": "json", "page": {"number": page, "size": 10000}})
            columns = result.get("columnNames") or columns
            rows.extend(result.get("rows") or [])
            if page >= int((result.get("page") or {}).get("totalPages") or 1):
                break
            page += 1
        return {"columns": columns, "rows": rows}
