"""`cortex serve` against one-request-at-a-time generation, side by side in one run.

    python bench/serve.py                      # a tiny base built here (the cortex-tiny shape, random weights)
    python bench/serve.py --base work/base --requests 64 --max-tokens 64 --device cuda

The same forecast prompts (the validators' prompt builder, synthetic market) are answered twice:

1. **sequential**: the project's generator (``cortex.eval.generate.Generator``), one request at a time;
2. **server**: ``cortex serve``'s app on 127.0.0.1 (uvicorn), ``/v1/chat/completions`` at concurrency 1, 8
   and 32 (a pool of that many clients, each sending its next request when the last one is answered).

Each line gives per-request latency p50/p99 and generated tokens per second over the whole run, and the
server's tokens/s as a ratio of the sequential one. Every request asks for exactly ``--max-tokens`` new
tokens' budget; the answers stop earlier only at the end-of-answer token. Numbers depend on the machine:
compare ratios within one run, never timings across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_base(out: Path) -> Path:
    """The cortex-tiny architecture (TinyConfig's defaults) with random weights and a tokenizer of real prompts."""
    from cortex.data import build_samples, get_source
    from cortex.model.tiny import TinyConfig, build_model
    from cortex.model.tokenizer import chat_corpus, train_tokenizer

    frames = get_source("synthetic").load(["BTC", "ETH", "SOL"], "2023-06-01", "2024-06-30")
    samples = build_samples(frames, ["BTC", "ETH", "SOL"], [1, 7], start="2024-01-01", end="2024-06-20", stride=2)
    tok = train_tokenizer(chat_corpus([s.prompt for s in samples]), vocab_size=2048)
    model = build_model(TinyConfig(), tok, seed=0)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def prompts(n: int) -> list[list[dict]]:
    from cortex.data import build_samples, get_source

    frames = get_source("synthetic").load(["BTC", "ETH"], "2023-06-01", "2024-12-31")
    samples = build_samples(frames, ["BTC", "ETH"], [1, 7], start="2024-09-01", end="2024-12-20")
    return [samples[i % len(samples)].prompt for i in range(n)]


def stats(latencies: list[float], tokens: int, wall: float) -> dict:
    return {"p50_s": float(np.percentile(latencies, 50)), "p99_s": float(np.percentile(latencies, 99)),
            "tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall}


def sequential(base: Path, chats: list, max_tokens: int, device: str) -> dict:
    from cortex.eval.generate import Generator

    gen = Generator.load(base, device=device, max_new_tokens=max_tokens, batch_size=1)
    gen.generate(chats[:1])  # warm-up
    latencies, tokens, started = [], 0, time.perf_counter()
    for chat in chats:
        t = time.perf_counter()
        tokens += gen.generate([chat])[1]
        latencies.append(time.perf_counter() - t)
    return stats(latencies, tokens, time.perf_counter() - started)


async def load(url: str, chats: list, max_tokens: int, concurrency: int) -> dict:
    import httpx

    queue: asyncio.Queue = asyncio.Queue()
    for chat in chats:
        queue.put_nowait(chat)
    latencies: list[float] = []
    tokens = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal tokens
        while not queue.empty():
            chat = queue.get_nowait()
            t = time.perf_counter()
            r = await http.post(f"{url}/v1/chat/completions",
                                json={"model": "cortex/tiny-llama", "messages": chat, "max_tokens": max_tokens})
            r.raise_for_status()
            latencies.append(time.perf_counter() - t)
            tokens += r.json()["usage"]["completion_tokens"]

    async with httpx.AsyncClient(timeout=600) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        return stats(latencies, tokens, time.perf_counter() - started)


def serve(base: Path, device: str, batch_size: int):
    from cortex.data import get_source
    from cortex.model.pointer import local_base
    from cortex.protocol.competition import CORTEX_TINY
    from cortex.serve.app import Limits, create_app
    from cortex.serve.base import Served
    from cortex.serve.engine import Engine
    from cortex.serve.once import start

    ref = local_base(base, CORTEX_TINY.base.repo)
    app = create_app(Served(Engine.load(ref.path, ref.revision, device=device, batch_size=batch_size), ref),
                     CORTEX_TINY, get_source("synthetic"), limits=Limits(max_tokens=4096, max_in_flight=1024))
    server, _, url = start(app)
    return server, url


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default=None, help="a model folder (default: build the tiny shape here)")
    p.add_argument("--requests", type=int, default=32, help="requests per measurement")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--batch-size", type=int, default=8, help="the server's batch size")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads for both sides (1: a tiny model on a shared CPU runs fastest on one)")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="cortex-bench-serve-") as tmp:
        base = Path(args.base) if args.base else build_base(Path(tmp) / "base")
        chats = prompts(args.requests)
        results = {"sequential": sequential(base, chats, args.max_tokens, args.device)}
        server, url = serve(base, args.device, args.batch_size)
        asyncio.run(load(url, chats[:2], args.max_tokens, 1))  # warm-up
        for c in (int(x) for x in args.concurrency.split(",")):
            results[f"server c={c}"] = asyncio.run(load(url, chats, args.max_tokens, c))
        server.should_exit = True
    seq = results["sequential"]["tokens_per_s"]
    print(f"{args.requests} requests, max_tokens {args.max_tokens}, device {args.device}, "
          f"torch threads {torch.get_num_threads()}, server batch {args.batch_size}")
    print(f"{'run':<16}{'p50 s':>9}{'p99 s':>9}{'tokens':>9}{'tok/s':>9}{'vs seq':>8}")
    for name, r in results.items():
        print(f"{name:<16}{r['p50_s']:>9.3f}{r['p99_s']:>9.3f}{r['tokens']:>9d}{r['tokens_per_s']:>9.1f}"
              f"{r['tokens_per_s'] / seq:>8.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
