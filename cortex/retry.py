"""The one retry policy for every remote call: the model store (Hub), market-data APIs, the teacher.

Retrying is ``tenacity``'s job; this module only says, once, how patient the project is:

- :class:`RetryPolicy`: how many retries, the first wait (doubled each retry, with jitter) and the cap;
- the wait is what the server's ``Retry-After`` asks for when it says (capped), else the backoff;
- :func:`retrying` / :func:`aretrying` give tenacity's ``Retrying`` / ``AsyncRetrying`` for a caller's
  ``transient(exc) -> (retry?, retry_after_seconds)``: each caller knows its own errors (an HTTP status,
  a dropped connection), never how long to wait. After the last retry the last error is raised.

Every retry is logged as one warning line (what failed, which retry, how long the wait is).
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Awaitable, Callable, Optional

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt

log = logging.getLogger(__name__)

Transient = Callable[[BaseException], "tuple[bool, Optional[float]]"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a transient failure."""

    retries: int = 5  # retries after the first attempt
    backoff: float = 1.0  # first wait in seconds, doubled each retry
    max_backoff: float = 30.0  # cap on one wait, ``Retry-After`` included
    jitter: float = 0.1  # up to this fraction added at random to each computed wait

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_backoff < 0 or self.jitter < 0:
            raise ValueError("retries, backoff, max_backoff and jitter must not be negative")

    def delay(self, retry: int, retry_after: Optional[float] = None) -> float:
        """The wait before retry number ``retry + 1`` (0-based): the server's ``Retry-After``, else backoff."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff)
        wait = min(self.backoff * (2**retry), self.max_backoff)
        return wait * (1 + random.uniform(0, self.jitter))


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date); None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - datetime.now(timezone.utc)).total_seconds(), 0.0)


def _settings(policy: RetryPolicy, transient: Transient, what: str) -> dict:
    def should_retry(exc: BaseException) -> bool:
        return transient(exc)[0]

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = transient(exc)[1] if exc is not None else None
        return policy.delay(state.attempt_number - 1, retry_after)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s failed (%s); retry %d/%d in %.2fs", what, short(exc), state.attempt_number,
                    policy.retries, state.upcoming_sleep)

    return dict(stop=stop_after_attempt(policy.retries + 1), wait=wait, retry=retry_if_exception(should_retry),
                before_sleep=before_sleep, reraise=True)


def retrying(policy: RetryPolicy, transient: Transient, what: str,
             sleep: Callable[[float], None] = time.sleep) -> Retrying:
    """``tenacity.Retrying`` for blocking calls: ``retrying(...)(fn)`` calls ``fn`` until it succeeds or gives up."""
    return Retrying(sleep=sleep, **_settings(policy, transient, what))


def aretrying(policy: RetryPolicy, transient: Transient, what: str,
              sleep: Optional[Callable[[float], Awaitable[None]]] = None) -> AsyncRetrying:
    """``tenacity.AsyncRetrying`` for coroutines: ``await aretrying(...)(coro_fn)``."""
    extra = {"sleep": sleep} if sleep is not None else {}
    return AsyncRetrying(**extra, **_settings(policy, transient, what))


def short(exc: Optional[BaseException]) -> str:
    """``Type: first line`` of an error, for one-line logs."""
    if exc is None:
        return ""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"
