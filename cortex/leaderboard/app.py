"""The leaderboard web app: the pages, the JSON API and a health check, over one cached snapshot.

``create_app(load)`` takes the function that reads a snapshot (``cortex.leaderboard.data.snapshot``
bound to a chain and state folders) and calls it at most once per ``ttl`` seconds. When a read
fails (the node is unreachable, say), the last good snapshot is served and the failure logged;
with none yet, the pages answer 503 with the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse

from cortex.leaderboard.render import APP_LINKS, CSP, index_page, miner_page

log = logging.getLogger(__name__)


class CachedSnapshot:
    """``load()`` called at most once per ``ttl`` seconds, by one thread at a time."""

    def __init__(self, load: Callable[[], dict], ttl: float) -> None:
        self.load, self.ttl = load, ttl
        self.lock = threading.Lock()
        self.value: dict | None = None
        self.at = float("-inf")

    def get(self) -> dict:
        with self.lock:
            if time.monotonic() - self.at >= self.ttl:
                try:
                    self.value = self.load()
                except Exception as exc:  # noqa: BLE001 - the chain or a file: keep serving the last good one
                    if self.value is None:
                        log.error("cannot read the leaderboard: %s", exc)
                        raise HTTPException(503, f"cannot read the leaderboard yet: {exc}") from None
                    log.warning("reading the leaderboard failed (%s); serving the snapshot from before", exc)
                self.at = time.monotonic()
            assert self.value is not None
            return self.value


def create_app(load: Callable[[], dict], *, ttl: float = 5.0) -> FastAPI:
    cache = CachedSnapshot(load, ttl)
    app = FastAPI(title="Cortex leaderboard", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def security_headers(request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(index_page(cache.get(), APP_LINKS))

    @app.get("/miner/{uid}", response_class=HTMLResponse)
    def miner(uid: int) -> HTMLResponse:
        page = miner_page(cache.get(), uid, APP_LINKS)
        if page is None:
            raise HTTPException(404, f"uid {uid} has no model on the leaderboard")
        return HTMLResponse(page)

    @app.get("/api/v1/leaderboard")
    def api() -> JSONResponse:
        return JSONResponse(cache.get())

    @app.get("/healthz")
    def healthz() -> dict:
        snap = cache.get()
        return {"status": "ok", "block": snap["block"], "netuid": snap["netuid"]}

    return app
