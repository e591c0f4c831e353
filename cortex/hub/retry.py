"""Throttled calls for a remote store (retries are ``cortex.retry``'s, the project's one policy).

:class:`SyncThrottler` lets blocking code share one ``asyncio_throttle.Throttler``: the throttler
lives on a private event loop in a daemon thread, and ``acquire()`` blocks the calling thread until
the loop grants a slot. Every acquire runs on that one loop, so callers in many threads are safe.
The store takes one slot per attempt, retries included.
"""

from __future__ import annotations

import asyncio
import threading

from asyncio_throttle import Throttler


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
