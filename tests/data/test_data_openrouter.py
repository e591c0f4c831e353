"""The OpenRouter teacher against servers on 127.0.0.1 that refuse or rate-limit: the one retry policy
honours ``Retry-After``, a teacher that keeps failing stops after a bounded number of samples with one
line, and what it received stays cached so the same build resumes without paying twice."""

import json
import socket

import pytest

from cortex.data import build_samples, split_by_time
from cortex.data.sources import SyntheticSource
from cortex.data.teachers import TeacherError
from cortex.data.teachers.openrouter import OpenRouterTeacher
from cortex.retry import RetryPolicy
from fake_services import FakeOpenRouter, serve

FRAMES = SyntheticSource(seed=3).load(["BTC", "ETH"], "2022-01-01", "2022-12-31")
SAMPLES = split_by_time(build_samples(FRAMES, ["BTC", "ETH"], [1], stride=5))[0]["train"][:6]


def reply(messages):
    asset = messages[-1]["content"].split()[0]
    answer = {"asset": asset, "horizon_days": 1, "direction": "up", "p_up": 0.6, "return_pct": 1.0}
    return "Trend up.", f"<answer>{json.dumps(answer)}</answer>"


class RateLimited(FakeOpenRouter):
    """429 with ``Retry-After: 2.5`` on every request numbered in ``refuse``; answers the rest."""

    def __init__(self, refuse):
        super().__init__(reply)
        self.refuse, self.n = set(refuse), 0

    def handle(self, method, path, query, body):
        with self.lock:
            self.requests.append({"body": body})
            self.n += 1
            if self.n in self.refuse:
                return 429, {"Retry-After": "2.5"}, {"error": {"message": "rate limited"}}
        return self.answer(method, path, query, body)


def teacher(url, tmp_path, waits, **kw):
    async def sleep(seconds):  # records the waits instead of taking them: no timing in tests
        waits.append(seconds)

    return OpenRouterTeacher(api_key="k", base_url=url, cache_dir=tmp_path / "cache", rate_limit=1000,
                             concurrency=1, sleep=sleep, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there, connections are refused


def test_retry_after_is_what_the_teacher_waits(tmp_path):
    waits: list[float] = []
    with serve(RateLimited(refuse={1, 2})) as url:
        t = teacher(url, tmp_path, waits, policy=RetryPolicy(retries=3, backoff=100.0, max_backoff=60.0))
        out = t.complete(SAMPLES[:2])
    assert waits == [2.5, 2.5]  # the server's Retry-After, not the policy's 100 s backoff
    assert all(o is not None and o.startswith("<think>Trend up.") for o in out) and t.sent == 4


def test_retry_after_is_capped_by_the_policy(tmp_path):
    waits: list[float] = []
    with serve(RateLimited(refuse={1})) as url:
        t = teacher(url, tmp_path, waits, policy=RetryPolicy(retries=1, backoff=0.0, max_backoff=1.0))
        assert t.complete(SAMPLES[:1])[0] is not None
    assert waits == [1.0]


def test_a_refusing_teacher_stops_after_consecutive_failures(tmp_path):
    waits: list[float] = []
    url = f"http://127.0.0.1:{free_port()}/api/v1"
    t = teacher(url, tmp_path, waits, policy=RetryPolicy(retries=2, backoff=0.5, jitter=0.0),
                max_consecutive_failures=3)
    with pytest.raises(TeacherError) as caught:
        t.complete(SAMPLES)
    message = str(caught.value)
    assert "\n" not in message and "3 requests in a row failed" in message and "0 of 6 traces" in message
    assert "APIConnectionError" in message and "run the same command again" in message
    assert t.sent == 3 * 3  # three samples, three attempts each; the other three never sent
    assert waits == [0.5, 1.0] * 3  # the policy's backoff between attempts
    assert len(t.errors) == 3


def test_what_was_received_is_kept_and_the_build_resumes(tmp_path):
    waits: list[float] = []
    # requests 1-2 answered, then everything refused (429) until the teacher stops
    with serve(RateLimited(refuse=set(range(3, 100)))) as url:
        first = teacher(url, tmp_path, waits, policy=RetryPolicy(retries=0), max_consecutive_failures=2)
        with pytest.raises(TeacherError, match="2 of 6 traces"):
            first.complete(SAMPLES)
        assert first.sent == 4
    cached = list((tmp_path / "cache").rglob("*.json"))
    assert len(cached) == 2
    with serve(FakeOpenRouter(reply)) as url:  # the teacher is back: only the missing four are paid for
        again = teacher(url, tmp_path, waits, policy=RetryPolicy(retries=0))
        out = again.complete(SAMPLES)
    assert again.sent == 4 and all(o is not None for o in out)
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 6
