"""Throttled HTTP requests for the network sources, retried by the project's one policy (``cortex.retry``)."""

from __future__ import annotations

import logging
from typing import Optional

import httpx
from asyncio_throttle import Throttler

from cortex.data.frame import DataError
from cortex.retry import RetryPolicy, aretrying, parse_retry_after, short

log = logging.getLogger(__name__)

# 418 is Binance's ban warning after ignored 429s.
RETRY_STATUS = frozenset({418, 429, 500, 502, 503, 504})
DATA_POLICY = RetryPolicy(retries=5, backoff=0.5, max_backoff=30.0, jitter=0.5)


class _Retryable(Exception):
    """A response worth another attempt (418/429/5xx), with the server's ``Retry-After``."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code} {response.text[:200].strip()}")
        self.retry_after = parse_retry_after(response.headers.get("retry-after"))


def transient(exc: BaseException) -> tuple[bool, Optional[float]]:
    if isinstance(exc, _Retryable):
        return True, exc.retry_after
    return isinstance(exc, httpx.TransportError), None


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

    async def attempt() -> httpx.Response:
        async with throttler:
            response = await client.request(method, url, **kwargs)
        if response.status_code < 300:
            return response
        if response.status_code in RETRY_STATUS or response.status_code >= 500:
            raise _Retryable(response)
        raise DataError(f"{what}: HTTP {response.status_code} {response.text[:200].strip()}")

    try:
        return await aretrying(policy, transient, what)(attempt)
    except (_Retryable, httpx.TransportError) as exc:
        last = exc if isinstance(exc, _Retryable) else short(exc)
        raise DataError(f"{what}: gave up after {policy.retries + 1} attempts ({last})") from None
