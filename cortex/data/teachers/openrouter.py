"""``openrouter``: DeepSeek R1 through OpenRouter's OpenAI-compatible API.

The reasoning comes back in ``message.reasoning`` (R1's thinking; a ``<think>`` block in the
content is the fallback), the answer in the content. Requests are throttled with
``asyncio-throttle``, retried by the project's one policy (``cortex.retry``: backoff on 429/5xx and
connection errors, waiting what ``Retry-After`` asks for; the SDK's own retries are off so that one
policy decides), and cached on disk by the hash of the request, so that no request is paid for twice.

An unreachable or refusing teacher does not retry forever: after ``max_consecutive_failures``
samples in a row fail (each after its retries), no more requests are sent and :meth:`complete`
raises one :class:`TeacherError` line. Every reply received so far stays in the cache, so running
the same command again resumes where it stopped without paying for them again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Awaitable, Callable, Optional, Sequence

from asyncio_throttle import Throttler

from cortex.atomic import write_text
from cortex.data.samples import Sample
from cortex.data.sources.base import cache_root
from cortex.data.teachers.base import TeacherError
from cortex.retry import RetryPolicy, aretrying, parse_retry_after, short

log = logging.getLogger(__name__)

DEFAULT_URL = "https://openrouter.ai/api/v1"
DEFAULT_MODEL = "deepseek/deepseek-r1"
KEY_ENV, URL_ENV = "OPENROUTER_API_KEY", "CORTEX_OPENROUTER_URL"
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_JSON = re.compile(r"\{[^{}]*\}", re.DOTALL)
TEACHER_POLICY = RetryPolicy(retries=3, backoff=1.0, max_backoff=60.0, jitter=0.5)


def compose(reasoning: str | None, content: str | None) -> str | None:
    """``<think>reasoning</think><answer>json</answer>`` from R1's two fields, or None if no answer."""
    content = content or ""
    if not reasoning:
        found = _THINK.search(content)
        reasoning = found.group(1) if found else ""
    rest = _THINK.sub("", content)
    found = _ANSWER.search(rest)
    if found:
        body = found.group(1).strip()
    else:
        objects = _JSON.findall(rest)
        if not objects:
            return None
        body = objects[-1].strip()
    reasoning = reasoning.replace("<think>", "").replace("</think>", "").strip()
    return f"<think>{reasoning}</think><answer>{body}</answer>"


class OpenRouterTeacher:
    name = "openrouter"

    def __init__(self, model: str = DEFAULT_MODEL, api_key: str | None = None, base_url: str | None = None,
                 cache_dir: str | Path | None = None, rate_limit: float = 2.0, concurrency: int = 8,
                 policy: RetryPolicy = TEACHER_POLICY, max_consecutive_failures: int = 3, temperature: float = 0.6,
                 max_tokens: int = 4096, timeout: float = 300.0,
                 sleep: Optional[Callable[[float], Awaitable[None]]] = None):
        self.api_key = api_key or os.environ.get(KEY_ENV)
        if not self.api_key:
            raise TeacherError(f"the openrouter teacher needs {KEY_ENV} (an OpenRouter API key); "
                               "or use --teacher analyst offline")
        self.model = model
        self.base_url = (base_url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        self.cache_dir = Path(cache_dir) if cache_dir else cache_root() / "openrouter"
        self.rate_limit, self.concurrency = rate_limit, concurrency
        self.policy, self.max_consecutive_failures, self._sleep = policy, max(1, max_consecutive_failures), sleep
        self.temperature, self.max_tokens, self.timeout = temperature, max_tokens, timeout
        self.sent = 0  # requests that went over the network (cache misses, retries included)
        self.errors: list[str] = []
        self._in_row = 0  # samples failed in a row (a reply resets it)
        self._stopped: str | None = None  # why no more requests are sent

    def fit(self, train: Sequence[Sample]) -> None:
        """Nothing to fit: R1 sees only each prompt."""

    def request(self, sample: Sample) -> dict:
        return {"model": self.model, "messages": sample.prompt, "temperature": self.temperature,
                "max_tokens": self.max_tokens}

    def cache_path(self, request: dict) -> Path:
        key = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.json"

    def complete(self, samples: Sequence[Sample], progress: bool = False) -> list[str | None]:
        return asyncio.run(self._complete_all(list(samples), progress))

    async def _complete_all(self, samples: list[Sample], progress: bool) -> list[str | None]:
        from openai import AsyncOpenAI
        from tqdm.auto import tqdm

        client = AsyncOpenAI(api_key=self.api_key, base_url=self.base_url, max_retries=0,  # cortex.retry decides
                             timeout=self.timeout)
        throttler = Throttler(rate_limit=self.rate_limit, period=1.0)
        gate = asyncio.Semaphore(self.concurrency)
        bar = tqdm(total=len(samples), desc="openrouter", unit="trace", disable=not progress)

        async def one(sample: Sample) -> str | None:
            async with gate:
                reply = None
                if self._stopped is None:
                    try:
                        reply = await self._reply(client, throttler, self.request(sample))
                        self._in_row = 0
                    except TeacherError as exc:
                        self._failed(str(exc))
                        log.warning("%s %s h=%d: %s", sample.asset, sample.cutoff, sample.horizon_days, exc)
                bar.update(1)
                return compose(reply.get("reasoning"), reply.get("content")) if reply else None

        try:
            out = list(await asyncio.gather(*(one(s) for s in samples)))
        finally:
            bar.close()
            await client.close()
        if self._stopped is not None:
            got = sum(o is not None for o in out)
            raise TeacherError(f"openrouter: stopped after {self._stopped}; {got} of {len(out)} traces of this split "
                               f"were received and every reply so far is cached in {self.cache_dir}: fix the cause "
                               "and run the same command again to resume without paying for them twice")
        return out

    def _failed(self, error: str) -> None:
        """Count a failed sample; after ``max_consecutive_failures`` in a row, send nothing more."""
        self.errors.append(error)
        self._in_row += 1
        if self._in_row >= self.max_consecutive_failures and self._stopped is None:
            self._stopped = f"{self._in_row} requests in a row failed (last: {error})"
            log.error("openrouter: %s; sending no more requests", self._stopped)

    async def _reply(self, client, throttler: Throttler, request: dict) -> dict:
        """The cached reply of a request, or a new one (retried by the policy), written to the cache."""
        path = self.cache_path(request)
        if path.exists():
            return json.loads(path.read_text())

        async def attempt() -> dict:
            async with throttler:
                self.sent += 1
                resp = await client.chat.completions.create(extra_body={"include_reasoning": True}, **request)
            try:
                message = resp.choices[0].message
                extra = message.model_extra or {}
                reasoning = getattr(message, "reasoning", None) or extra.get("reasoning") or extra.get(
                    "reasoning_content")
                return {"reasoning": reasoning, "content": message.content, "model": resp.model,
                        "usage": resp.usage.model_dump() if resp.usage else None}
            except (IndexError, AttributeError, TypeError) as exc:
                raise TeacherError(f"openrouter: malformed reply ({exc})") from None

        extra = {"sleep": self._sleep} if self._sleep is not None else {}
        try:
            reply = await aretrying(self.policy, transient, "openrouter", **extra)(attempt)
        except TeacherError:
            raise
        except Exception as exc:
            again, _ = transient(exc)
            if again:
                raise TeacherError(f"openrouter: gave up after {self.policy.retries + 1} attempts ({short(exc)})") from None
            status = getattr(exc, "status_code", None)
            raise TeacherError(f"openrouter {'HTTP ' + str(status) if status else 'error'}: {short(exc)}") from None
        write_text(path, json.dumps({"request": request, **reply}))
        return reply

    def describe(self) -> dict:
        return {"name": self.name, "model": self.model, "base_url": self.base_url,
                "temperature": self.temperature, "max_tokens": self.max_tokens,
                "requests_sent": self.sent, "errors": len(self.errors)}


def transient(exc: BaseException) -> tuple[bool, Optional[float]]:
    """(retry?, Retry-After seconds) for an error the OpenAI SDK raised: 429, 5xx and lost connections."""
    import openai

    if isinstance(exc, openai.APIConnectionError):  # refused, reset, timed out
        return True, None
    if isinstance(exc, openai.APIStatusError) and (exc.status_code == 429 or exc.status_code >= 500):
        return True, parse_retry_after(exc.response.headers.get("retry-after"))
    return False, None
