"""cortex.retry: the one retry policy (tenacity underneath): Retry-After first, else capped backoff."""

import email.utils
import time

import pytest

from cortex.retry import RetryPolicy, parse_retry_after, retrying


class Flaky(Exception):
    def __init__(self, retry_after=None):
        self.retry_after = retry_after


def transient(exc):
    return isinstance(exc, Flaky), getattr(exc, "retry_after", None)


def test_retries_transient_errors_with_backoff_then_succeeds():
    waits, calls = [], []

    def fn():
        calls.append(1)
        if len(calls) < 3:
            raise Flaky()
        return "ok"

    policy = RetryPolicy(retries=5, backoff=0.5, max_backoff=0.8, jitter=0.0)
    assert retrying(policy, transient, "test", sleep=waits.append)(fn) == "ok"
    assert waits == [0.5, 0.8]  # doubled, then capped


def test_honours_retry_after_and_gives_up_with_the_last_error():
    waits = []

    def fn():
        raise Flaky(retry_after=4.0)

    with pytest.raises(Flaky):
        retrying(RetryPolicy(retries=2, backoff=100.0, max_backoff=60.0), transient, "test", sleep=waits.append)(fn)
    assert waits == [4.0, 4.0]


def test_a_final_error_is_not_retried():
    waits = []

    def fn():
        raise KeyError("final")

    with pytest.raises(KeyError):
        retrying(RetryPolicy(retries=3), transient, "test", sleep=waits.append)(fn)
    assert waits == []


def test_parse_retry_after_seconds_and_dates():
    assert parse_retry_after("7") == 7.0 and parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = parse_retry_after(email.utils.formatdate(time.time() + 30, usegmt=True))
    assert later is not None and 25 <= later <= 31
    assert parse_retry_after(email.utils.formatdate(time.time() - 30, usegmt=True)) == 0.0


def test_policy_rejects_negative_values():
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)
