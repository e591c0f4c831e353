"""``cortex serve --once ASSET:DAYS``: serve the base, send the server one ``POST /v1/forecast`` over HTTP,
print the answer (forecast, reasoning, the market data it saw, the revision) and stop.

The quickest look at what a competition's current base says, e.g. right after ``make demo``. The request
goes over a real socket through the same app, engine and forecast code as any client's request; nothing
here builds a prompt or parses an answer of its own. ``start`` (uvicorn in a thread) is also what the
serve tests and ``bench/serve.py`` run the app with.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

from cortex.errors import CortexError


def parse_question(spec: str) -> tuple[str, int]:
    """``"BTC:7"`` → ``("BTC", 7)``; whether the competition forecasts it is the server's to say."""
    asset, sep, days = spec.partition(":")
    if not sep or not asset or not days.isdigit():
        raise CortexError(f"--once takes ASSET:DAYS (e.g. BTC:7), got {spec!r}")
    return asset, int(days)


def start(app: Any, host: str = "127.0.0.1", port: int = 0) -> tuple[Any, threading.Thread, str]:
    """``app`` served by uvicorn in a daemon thread, once it listens: ``(server, thread, url)``.
    Port 0 takes a free one. Stop it with ``server.should_exit = True`` and ``thread.join()``."""
    import uvicorn

    try:  # bound here, so that a busy port is this thread's one-line error, not uvicorn's exit in another
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        raise CortexError(f"cannot listen on {host}:{port} ({exc.strerror}): choose another --port") from None
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="cortex-serve-http", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise CortexError(f"the server on {host}:{port} stopped while starting (see the log above)")
        time.sleep(0.02)
    return server, thread, f"http://{host}:{sock.getsockname()[1]}"


def forecast_once(app: Any, host: str, port: int, asset: str, horizon_days: int, timeout: float = 600.0) -> dict:
    """Serve ``app``, ask it one forecast over HTTP, stop it; the answer's JSON (a CortexError if refused)."""
    import httpx

    server, thread, url = start(app, host, port)
    try:
        response = httpx.post(f"{url}/v1/forecast", json={"asset": asset, "horizon_days": horizon_days},
                              timeout=timeout)
    except httpx.HTTPError as exc:
        raise CortexError(f"POST {url}/v1/forecast failed: {exc}") from None
    finally:
        server.should_exit = True
        thread.join(10)
    try:
        body = response.json()
    except ValueError:
        body = {"error": {"message": response.text[:200]}}
    if response.status_code != 200:
        raise CortexError(f"POST /v1/forecast: {response.status_code} {body.get('error', {}).get('message', body)}")
    return {**body, "url": url}


def summary(answer: dict, seconds: float) -> str:
    """The forecast's answer as a few lines for a person: the question, what the model saw, what it said."""
    model, market, usage = answer["model"], answer["market"], answer["usage"]
    features = ", ".join(f"{k} {_num(v)}" for k, v in market["features"].items())
    lines = [f"{model['repo']}@{model['revision']} served at {answer['url']}",
             f"POST /v1/forecast {json.dumps({'asset': answer['asset'], 'horizon_days': answer['horizon_days']})}: "
             f"answered in {seconds:.1f} s ({usage['prompt_tokens']} prompt tokens, "
             f"{usage['completion_tokens']} new)",
             f"market it saw: {market['source']}{' (synthetic)' if market.get('synthetic') and 'synthetic' not in market['source'] else ''}, "
             f"up to {market['cutoff']}: {features}"]
    forecast = answer["forecast"]
    if forecast is not None:
        lines += [f"forecast: {forecast['direction']}, p_up {forecast['p_up']}, return_pct {forecast['return_pct']}",
                  f"reasoning: {answer['reasoning']}"]
    else:
        lines += [f"forecast: none (the answer does not parse: {answer['parse_error']})",
                  f"answer: {_clip(answer['completion'], 300)!r}"]
    return "\n".join(lines)


def _num(v: Any) -> str:
    return f"{v:+.4g}" if isinstance(v, float) else str(v)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n] + "…"
