"""Throttled, retried calls for a remote store.

:class:`SyncThrottler` lets blocking code share one ``asyncio_throttle.Throttler``: the throttler
lives on a private event loop in a daemon thread, and ``acquire()`` blocks the calling thread until
the loop grants a slot. Every acquire runs on that one loop, so callers in many threads are safe.

:func:`call_with_retry` takes one slot per attempt and retries with exponential backoff while the
error is transient (HTTP 429 or 5xx, a dropped connection), waiting what ``Retry-After`` asks for.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional, TypeVar

from asyncio_throttle import Throttler

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()


class SyncThrottler:
    """At most ``rate_limit`` acquisitions per ``period`` seconds, for synchronous callers."""

    def __init__(self, rate_limit: int, period: float = 1.0) -> None:
        if rate_limit < 1 or period <= 0:
            raise ValueError("rate_limit must be at least 1 and period positive")
        self.rate_limit, self.period = rate_limit, period
        self._loop: asyncio.AbstractEventLoop | None = None
        self._throttler: Throttler | None = None
        self._lock = threading.Lock()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                self._throttler = Throttler(rate_limit=self.rate_limit, period=self.period)
                threading.Thread(target=_run_loop, args=(loop,), name="store-throttle", daemon=True).start()
                self._loop = loop
            return self._loop

    def acquire(self) -> None:
        loop = self._ensure_loop()
        assert self._throttler is not None
        asyncio.run_coroutine_threadsafe(self._throttler.acquire(), loop).result()

    def close(self) -> None:
        with self._lock:
            if self._loop is not None and not self._loop.is_closed():
                loop, self._loop = self._loop, None
                loop.call_soon_threadsafe(loop.stop)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a transient failure."""

    max_retries: int = 5  # retries after the first attempt
    backoff: float = 1.0  # first wait in seconds, doubled each retry
    max_backoff: float = 30.0  # cap on one wait, ``Retry-After`` included
    jitter: float = 0.1  # up to this fraction added at random to each computed wait

    def delay(self, retry: int, retry_after: Optional[float]) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff)
        wait = min(self.backoff * (2**retry), self.max_backoff)
        return wait * (1 + random.uniform(0, self.jitter))


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a ``Retry-After`` header (delay-seconds form); None when absent or a date."""
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


def call_with_retry(
    fn: Callable[[], T],
    *,
    what: str,
    throttler: SyncThrottler,
    policy: RetryPolicy,
    transient: Callable[[BaseException], tuple[bool, Optional[float]]],
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` through ``throttler``, retrying while ``transient(exc)`` says so.

    ``transient(exc)`` returns ``(retry, retry_after)``: whether the error is worth another attempt
    and the server's ``Retry-After`` in seconds, if any. After ``policy.max_retries`` retries the
    last error is raised.
    """
    retry = 0
    while True:
        throttler.acquire()
        try:
            return fn()
        except Exception as exc:
            again, retry_after = transient(exc)
            if not again or retry >= policy.max_retries:
                raise
            wait = policy.delay(retry, retry_after)
            retry += 1
            logger.warning("%s failed (%s); retry %d/%d in %.2fs", what, _short(exc), retry, policy.max_retries, wait)
            sleep(wait)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
