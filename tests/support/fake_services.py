"""Local stand-ins for the network services the data area talks to, for the data and teacher tests.

Each runs on ``127.0.0.1`` (a free port) in a background thread and answers like the real
service: Binance ``/api/v3/klines``, Flipside's JSON-RPC ``/json-rpc``, and an OpenAI-compatible
``/chat/completions`` that replies the way DeepSeek R1 does on OpenRouter (``message.reasoning``).
``fail_first`` makes the first N requests answer 429 (to exercise retries).
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator
from urllib.parse import parse_qs, urlparse

import pandas as pd

Reply = tuple[int, dict, object]  # (status, headers, JSON body)


class FakeService:
    """Counts requests, fails the first ``fail_first`` with 429, then asks ``answer``."""

    def __init__(self, fail_first: int = 0):
        self.fail_first = fail_first
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    def handle(self, method: str, path: str, query: dict, body: object) -> Reply:
        with self.lock:
            self.requests.append({"method": method, "path": path, "query": query, "body": body})
            if self.fail_first > 0:
                self.fail_first -= 1
                return 429, {"Retry-After": "0"}, {"code": -1003, "msg": "Too many requests"}
        return self.answer(method, path, query, body)

    def answer(self, method: str, path: str, query: dict, body: object) -> Reply:
        raise NotImplementedError


class FakeBinance(FakeService):
    """``GET /api/v3/klines`` from frames (``{"BTCUSDT": frame}``) indexed by UTC day."""

    def __init__(self, frames: dict[str, pd.DataFrame], fail_first: int = 0, now: pd.Timestamp | None = None):
        super().__init__(fail_first)
        self.frames = frames
        self.now = now

    def answer(self, method, path, query, body) -> Reply:
        if path != "/api/v3/klines":
            return 404, {}, {"code": -1, "msg": "not found"}
        symbol = query.get("symbol", "")
        if symbol not in self.frames:
            return 400, {}, {"code": -1121, "msg": "Invalid symbol."}
        limit = min(int(query.get("limit", 500)), 1000)
        start = int(query.get("startTime", 0))
        end = int(query.get("endTime", 2**62))
        frame = self.frames[symbol]
        ms = (frame.index - pd.Timestamp(0)) // pd.Timedelta(milliseconds=1)
        rows = []
        for i in range(len(frame)):
            if start <= ms[i] <= end:
                r = frame.iloc[i]
                rows.append([int(ms[i]), f"{r.open:.8f}", f"{r.high:.8f}", f"{r.low:.8f}", f"{r.close:.8f}",
                             f"{r.volume:.8f}", int(ms[i]) + 86_399_999, f"{r.quote_volume:.8f}",
                             int(r.trades), f"{r.taker_buy_base:.8f}", f"{r.taker_buy_quote:.8f}", "0"])
                if len(rows) >= limit:
                    break
        return 200, {}, rows


class FakeFlipside(FakeService):
    """JSON-RPC ``createQueryRun`` / ``getQueryRun`` / ``getQueryRunResults``; ``tables`` maps a SQL
    substring (e.g. ``"fact_transactions"``) to (columns, rows); the run succeeds on the 2nd poll."""

    def __init__(self, tables: dict[str, tuple[list[str], list[list]]], page_size: int = 2, api_key: str = "k"):
        super().__init__()
        self.tables, self.page_size, self.api_key = tables, page_size, api_key
        self.runs: dict[str, dict] = {}

    def answer(self, method, path, query, body) -> Reply:
        if path != "/json-rpc":
            return 404, {}, {}
        rpc, params = body["method"], body["params"][0]
        if rpc == "createQueryRun":
            run_id = f"run{len(self.runs)}"
            table = next((t for key, t in self.tables.items() if key in params["sql"]), ([], []))
            self.runs[run_id] = {"table": table, "polls": 0, "sql": params["sql"]}
            run = {"queryRun": {"id": run_id, "state": "QUERY_STATE_READY"}}
            return 200, {}, {"jsonrpc": "2.0", "id": 1, "result": run}
        run = self.runs.get(params.get("queryRunId"))
        if run is None:
            return 200, {}, {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "no such query run"}}
        if rpc == "getQueryRun":
            run["polls"] += 1
            state = "QUERY_STATE_SUCCESS" if run["polls"] >= 2 else "QUERY_STATE_RUNNING"
            return 200, {}, {"jsonrpc": "2.0", "id": 1, "result": {"queryRun": {"id": "x", "state": state}}}
        if rpc == "getQueryRunResults":
            columns, rows = run["table"]
            number = params["page"]["number"]
            pages = max(1, -(-len(rows) // self.page_size))
            chunk = rows[(number - 1) * self.page_size : number * self.page_size]
            result = {"columnNames": columns, "rows": chunk,
                      "page": {"currentPageNumber": number, "totalPages": pages}}
            return 200, {}, {"jsonrpc": "2.0", "id": 1, "result": result}
        return 200, {}, {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "method not found"}}


class FakeOpenRouter(FakeService):
    """``POST /chat/completions`` answering with ``reply(messages) -> (reasoning, content)``."""

    def __init__(self, reply: Callable[[list[dict]], tuple[str | None, str]], fail_first: int = 0):
        super().__init__(fail_first)
        self.reply = reply

    def answer(self, method, path, query, body) -> Reply:
        if not path.endswith("/chat/completions"):
            return 404, {}, {"error": {"message": "not found"}}
        reasoning, content = self.reply(body["messages"])
        message = {"role": "assistant", "content": content}
        if reasoning is not None:
            message["reasoning"] = reasoning
        return 200, {}, {
            "id": "gen-1", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
        }


@contextmanager
def serve(service: FakeService) -> Iterator[str]:
    """Run ``service`` on 127.0.0.1 and yield its base URL (``http://127.0.0.1:PORT``)."""

    class Handler(BaseHTTPRequestHandler):
        def _go(self, method: str) -> None:
            url = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            status, headers, payload = service.handle(method, url.path, query, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            self._go("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._go("POST")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
