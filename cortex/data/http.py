"""Throttled HTTP requests with retries and exponential backoff, for the network sources."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

import httpx
from asyncio_throttle import Throttler

from cortex.data.frame import DataError

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({418, 429, 500, 502, 503, 504})


@dataclass
class RetryPolicy:
    """How often and how patiently to retry. ``418`` is Binance's ban warning after ignored 429s."""

    retries: int = 5
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    max_backoff: float = 30.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), self.max_backoff)
            except ValueError:
                pass
        base = min(self.backoff * (2**attempt), self.max_backoff)
        return base * (0.75 + 0.5 * random.random())


async def request(
    client: httpx.AsyncClient,
    throttler: Throttler,
    method: str,
    url: str,
    policy: RetryPolicy,
    what: str,
    **kwargs,
) -> httpx.Response:
    """Send one request through the throttler; retry 418/429/5xx and transport errors.

    Raises :class:`DataError` with a one-line message once retries are spent or on
    any other non-2xx status.
    """
    last = ""
    for attempt in range(policy.retries + 1):
        async with throttler:
            try:
                response = await client.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                response, last = None, f"{type(exc).__name__}: {exc}"
        if response is not None:
            if response.status_code < 300:
                return response
            last = f"HTTP {response.status_code} {response.text[:200].strip()}"
            if response.status_code not in RETRY_STATUS and response.status_code < 500:
                raise DataError(f"{what}: {last}")
        if attempt < policy.retries:
            retry_after = response.headers.get("retry-after") if response is not None else None
            wait = policy.delay(attempt, retry_after)
            log.warning("%s: %s; retrying in %.1fs (%d/%d)", what, last, wait, attempt + 1, policy.retries)
            await asyncio.sleep(wait)
    raise DataError(f"{what}: gave up after {policy.retries + 1} attempts ({last})")
