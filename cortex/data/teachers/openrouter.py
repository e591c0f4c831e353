"""``openrouter``: DeepSeek R1 through OpenRouter's OpenAI-compatible API.

The reasoning comes back in ``message.reasoning`` (R1's thinking; a ``<think>`` block in the
content is the fallback), the answer in the content. Requests are throttled with
``asyncio-throttle``, retried with backoff on 429/5xx and connection errors, and cached on disk
by the hash of the request, so that no request is paid for twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import re
from pathlib import Path
from typing import Sequence

from asyncio_throttle import Throttler

from cortex.atomic import write_text
from cortex.data.samples import Sample
from cortex.data.sources.base import cache_root
from cortex.data.teachers.base import TeacherError

log = logging.getLogger(__name__)

DEFAULT_URL = "https://openrouter.ai/api/v1"
DEFAULT_MODEL = "deepseek/deepseek-r1"
KEY_ENV, URL_ENV = "OPENROUTER_API_KEY", "CORTEX_OPENROUTER_URL"
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_JSON = re.compile(r"\{[^{}]*\}", re.DOTALL)


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
                 retries: int = 5, backoff: float = 1.0, temperature: float = 0.6,
                 max_tokens: int = 4096, timeout: float = 300.0):
        self.api_key = api_key or os.environ.get(KEY_ENV)
        if not self.api_key:
            raise TeacherError(f"the openrouter teacher needs {KEY_ENV} (an OpenRouter API key); "
                               "or use --teacher analyst offline")
        self.model = model
        self.base_url = (base_url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        self.cache_dir = Path(cache_dir) if cache_dir else cache_root() / "openrouter"
        self.rate_limit, self.concurrency = rate_limit, concurrency
        self.retries, self.backoff = retries, backoff
        self.temperature, self.max_tokens, self.timeout = temperature, max_tokens, timeout
        self.sent = 0  # requests that went over the network (cache misses, retries included)
        self.errors: list[str] = []

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

        client = AsyncOpenAI(api_key=self.api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout)
        throttler = Throttler(rate_limit=self.rate_limit, period=1.0)
        gate = asyncio.Semaphore(self.concurrency)
        bar = tqdm(total=len(samples), desc="openrouter", unit="trace", disable=not progress)

        async def one(sample: Sample) -> str | None:
            async with gate:
                try:
                    reply = await self._reply(client, throttler, self.request(sample))
                except TeacherError as exc:
                    self.errors.append(str(exc))
                    log.warning("%s %s h=%d: %s", sample.asset, sample.cutoff, sample.horizon_days, exc)
                    reply = None
                bar.update(1)
                return compose(reply.get("reasoning"), reply.get("content")) if reply else None

        try:
            return list(await asyncio.gather(*(one(s) for s in samples)))
        finally:
            bar.close()
            await client.close()

    async def _reply(self, client, throttler: Throttler, request: dict) -> dict:
        """The cached reply of a request, or a new one (retried), written to the cache."""
        import openai

        path = self.cache_path(request)
        if path.exists():
            return json.loads(path.read_text())
        last = ""
        for attempt in range(self.retries + 1):
            try:
                async with throttler:
                    self.sent += 1
                    resp = await client.chat.completions.create(
                        extra_body={"include_reasoning": True}, **request)
                message = resp.choices[0].message
                extra = message.model_extra or {}
                reasoning = getattr(message, "reasoning", None) or extra.get("reasoning") or extra.get(
                    "reasoning_content")
                reply = {"reasoning": reasoning, "content": message.content, "model": resp.model,
                         "usage": resp.usage.model_dump() if resp.usage else None}
                write_text(path, json.dumps({"request": request, **reply}))
                return reply
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as exc:
                last = f"{type(exc).__name__}: {str(exc)[:200]}"
            except openai.APIStatusError as exc:
                if exc.status_code < 500 and exc.status_code != 429:
                    raise TeacherError(f"openrouter HTTP {exc.status_code}: {str(exc)[:200]}") from None
                last = f"HTTP {exc.status_code}"
            except (IndexError, AttributeError, TypeError) as exc:
                raise TeacherError(f"openrouter: malformed reply ({exc})") from None
            if attempt < self.retries:
                await asyncio.sleep(min(self.backoff * 2**attempt, 60.0) * (0.75 + 0.5 * random.random()))
        raise TeacherError(f"openrouter: gave up after {self.retries + 1} attempts ({last})")

    def describe(self) -> dict:
        return {"name": self.name, "model": self.model, "base_url": self.base_url,
                "temperature": self.temperature, "max_tokens": self.max_tokens,
                "requests_sent": self.sent, "errors": len(self.errors)}
