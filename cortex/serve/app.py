"""The server's HTTP face: OpenAI-compatible chat completions, the forecast API, health and metrics.

- ``POST /v1/chat/completions``: the OpenAI request and response shapes (``stream: true`` answers in
  server-sent events, ``data: {chunk}`` lines ending with ``data: [DONE]``). Decoding is always greedy, as
  the validators decode (``temperature`` and ``top_p`` are accepted and not used).
- ``GET /v1/models``: the one model served (its repo; the revision is in ``/health`` and every answer's
  ``system_fingerprint``).
- ``POST /v1/forecast {"asset", "horizon_days", "cutoff"?}``: the validators' prompt for that question
  from the latest market data, the model's answer parsed (``cortex.serve.forecast``), what it saw, and the
  revision that answered.
- ``GET /health`` and ``GET /metrics`` (Prometheus text format through ``prometheus_client``, the
  reference client, so any Prometheus scraper reads it).

Every error is one JSON object ``{"error": {"message", "type", "code"}}`` (the OpenAI shape, which the
``openai`` SDK raises as ``BadRequestError``, ``RateLimitError`` …) and the server goes on serving.
Limits: the body size (413), ``max_tokens`` and the prompt's length in tokens (400), requests in
flight (429).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from cortex.protocol.competition import Competition
from cortex.serve.base import Follower, Served
from cortex.serve.engine import EngineClosed
from cortex.serve.forecast import ForecastError, build_question, forecast_answer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 64 << 10  # a request body larger than this is refused (413)
    max_tokens: int = 1024  # the most new tokens a request may ask for
    max_prompt_tokens: int = 2048  # the longest prompt, in the base's tokens
    max_in_flight: int = 64  # requests queued or generating at once; more are refused (429)


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code


def _error(status: int, message: str, kind: str = "invalid_request_error", code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=status)


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False
    temperature: float | None = None  # greedy always
    top_p: float | None = None


class ForecastRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    asset: str
    horizon_days: int
    cutoff: str | None = None  # ISO day; default: the source's latest


class BodyLimit:
    """Refuses a request body over ``limit`` bytes (declared or streamed) with a JSON 413, before any handler reads it."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_large = _error(413, f"request body over {self.limit} bytes", code="body_too_large")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await too_large(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await too_large(scope, receive, send)
                return
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


class Metrics:
    """The server's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("cortex_serve_requests", "requests answered", ["endpoint", "status"], registry=r)
        self.seconds = Histogram("cortex_serve_request_seconds", "time to the whole answer", ["endpoint"], registry=r,
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.tokens = Counter("cortex_serve_generated_tokens", "new tokens generated", registry=r)
        self.in_flight = Gauge("cortex_serve_in_flight", "requests queued or generating", registry=r)
        self.swaps = Gauge("cortex_serve_base_swaps", "bases swapped in since start", registry=r)
        self.switch_failures = Gauge("cortex_serve_base_switch_failures", "new bases that could not be used",
                                     registry=r)


def create_app(served: Served, competition: Competition, source: Any, *, limits: Limits = Limits(),
               follower: Follower | None = None, model_name: str | None = None) -> FastAPI:
    """The app over ``served`` (the current base), asking ``competition``'s questions from ``source``."""
    app = FastAPI(title="Cortex serve", docs_url=None, redoc_url=None, openapi_url=None)
    metrics = Metrics()
    name = model_name or served.current()[1].repo
    state = {"in_flight": 0}

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        metrics.requests.labels(request.url.path, str(exc.status)).inc()
        return _error(exc.status, exc.message, exc.kind, exc.code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            message = "malformed JSON body: " + str(first.get("ctx", {}).get("error", "cannot parse it"))
        else:
            where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
            message = f"{where or 'body'}: {first.get('msg', 'invalid')}"
        metrics.requests.labels(request.url.path, "400").inc()
        return _error(400, message, code="invalid_body")

    def admit() -> None:
        if state["in_flight"] >= limits.max_in_flight:
            raise ApiError(429, f"the server is answering {limits.max_in_flight} requests already: retry shortly",
                           "rate_limit_error", "too_many_requests")
        state["in_flight"] += 1
        metrics.in_flight.set(state["in_flight"])

    def release() -> None:
        state["in_flight"] -= 1
        metrics.in_flight.set(state["in_flight"])

    def budget(requested: int | None) -> int:
        default = min(competition.eval.max_new_tokens, limits.max_tokens)
        if requested is not None and requested > limits.max_tokens:
            raise ApiError(400, f"max_tokens {requested} exceeds this server's limit of {limits.max_tokens}",
                           code="max_tokens_too_large")
        return requested or default

    def prompt(engine, messages: list[dict[str, str]]) -> list[int]:
        try:
            ids = engine.prompt_ids(messages)
        except ValueError as exc:
            raise ApiError(400, str(exc), code="invalid_messages") from None
        if len(ids) > limits.max_prompt_tokens:
            raise ApiError(400, f"the prompt is {len(ids)} tokens; this server takes at most {limits.max_prompt_tokens}",
                           code="prompt_too_long")
        return ids

    def queue(messages: list[dict[str, str]], max_tokens: int, stream: bool):
        """Queue the request on the current base: ``(the awaitable answer or the stream, its BaseRef)``. A base
        swapped out between reading the reference and queueing refuses it (EngineClosed): the next one takes it."""
        while True:
            engine, ref = served.current()
            ids = prompt(engine, messages)  # with this base's tokenizer
            try:
                return (engine.stream if stream else engine.complete)(messages, ids, max_tokens), ref
            except EngineClosed:
                continue

    def done(endpoint: str, started: float, tokens: int) -> None:
        metrics.requests.labels(endpoint, "200").inc()
        metrics.seconds.labels(endpoint).observe(time.monotonic() - started)
        metrics.tokens.inc(tokens)

    @app.get("/v1/models")
    def models() -> dict:
        engine, ref = served.current()
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "cortex",
                                            "revision": ref.revision}]}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest):
        if body.model not in (name, competition.id):
            raise ApiError(404, f"model {body.model[:80]!r} is not served here; this server serves {name!r}",
                           code="model_not_found")
        started = time.monotonic()
        messages = [m.model_dump() for m in body.messages]
        max_tokens = budget(body.max_completion_tokens or body.max_tokens)
        admit()
        try:
            answer, ref = queue(messages, max_tokens, body.stream)  # the base that answers, whatever is swapped in
        except BaseException:
            release()
            raise
        meta = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": name,
                "system_fingerprint": ref.revision}
        if not body.stream:
            try:
                c = await answer
            except Exception as exc:  # noqa: BLE001 - a generation failure is this request's error only
                raise ApiError(500, f"generation failed: {exc}", "server_error") from None
            finally:
                release()
            done("/v1/chat/completions", started, c.completion_tokens)
            return {**meta, "object": "chat.completion",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": c.text},
                                 "finish_reason": c.finish_reason, "logprobs": None}],
                    "usage": _usage(c)}
        return StreamingResponse(_sse(answer, meta, release, lambda n: done("/v1/chat/completions", started, n)),
                                 media_type="text/event-stream")

    @app.post("/v1/forecast")
    async def forecast(body: ForecastRequest) -> dict:
        started = time.monotonic()
        try:
            question = await run_in_threadpool(build_question, source, competition, body.asset, body.horizon_days,
                                               body.cutoff)
        except ForecastError as exc:
            raise ApiError(400, str(exc), code="unknown_question") from None
        admit()
        try:
            answer, ref = queue(question.messages, competition.eval.max_new_tokens, False)
            c = await answer
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001 - a generation failure is this request's error only
            raise ApiError(500, f"generation failed: {exc}", "server_error") from None
        finally:
            release()
        done("/v1/forecast", started, c.completion_tokens)
        return {"asset": question.asset, "horizon_days": question.horizon_days, "cutoff": question.cutoff,
                **forecast_answer(question, c.text, competition), "market": question.market,
                "prompt": question.messages, "model": {"repo": ref.repo, "revision": ref.revision},
                "usage": _usage(c)}

    @app.get("/health")
    def health() -> dict:
        engine, ref = served.current()
        return {"status": "ok", "model": name, "repo": ref.repo, "revision": ref.revision, "engine": engine.name,
                "competition": competition.id, "in_flight": state["in_flight"], "swaps": served.swaps,
                "last_error": follower.last_error if follower else None,
                "checked_at": follower.checked_at if follower else None}

    @app.get("/metrics")
    def prometheus() -> PlainTextResponse:
        metrics.swaps.set(served.swaps)
        metrics.switch_failures.set(follower.failures if follower else 0)
        return PlainTextResponse(generate_latest(metrics.registry).decode(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)
    return app


def _usage(c) -> dict[str, int]:
    return {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
            "total_tokens": c.prompt_tokens + c.completion_tokens}


async def _sse(pieces: AsyncIterator, meta: dict, release, finished) -> AsyncIterator[str]:
    """The OpenAI chunk stream: the role, each text piece, the finish reason with usage, then ``[DONE]``."""
    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        body = {**meta, "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
        return f"data: {json.dumps(body)}\n\n"

    try:
        yield chunk({"role": "assistant", "content": ""})
        async for item in pieces:
            if isinstance(item, str):
                yield chunk({"content": item})
            else:
                finished(item.completion_tokens)
                yield chunk({}, item.finish_reason, usage=_usage(item))
    except Exception as exc:  # noqa: BLE001 - the status is sent already: the error goes in the stream
        yield f"data: {json.dumps({'error': {'message': f'generation failed: {exc}', 'type': 'server_error'}})}\n\n"
    finally:
        release()
    yield "data: [DONE]\n\n"
