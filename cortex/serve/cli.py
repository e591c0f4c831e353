"""``cortex serve``: the current base of a competition behind an OpenAI-compatible API and a forecast API.

    cortex serve --base work/base                                    # a model folder
    cortex serve --store local:work/chain/store --revision REV        # a store revision of cortex/tiny-llama
    cortex serve --chain.path work/chain/chain.db --netuid 1          # follow the chain's base pointer
    cortex serve --chain.path work/localnet/chain.db --once BTC:7     # one forecast printed, then stop

Binds 127.0.0.1 unless ``--host`` says otherwise. See docs/serving.md.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


def register(parser: argparse.ArgumentParser) -> None:
    from cortex.serve.choose import add_base_args

    add_base_args(parser)
    a = parser.add_argument
    a("--source", default=None, help="market data for /v1/forecast: synthetic[:SEED] (offline default), csv:DIR, binance")
    a("--host", default="127.0.0.1", help="the address to bind (default loopback only)")
    a("--port", type=int, default=None, help="default 8100 (with --once: a free port)")
    a("--once", metavar="ASSET:DAYS", default=None,
      help="serve, send one POST /v1/forecast for ASSET and DAYS (e.g. BTC:7), print the answer and stop")
    a("--engine", default="auto", choices=("auto", "transformers", "vllm"),
      help="auto: vLLM when installed and a GPU is visible, else the project's transformers engine")
    a("--device", default="auto", help="transformers engine: auto, cpu, cuda or cuda:N")
    a("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    a("--threads", type=int, default=None,
      help="torch CPU threads (default torch's; 1 is fastest for the tiny base on a busy CPU)")
    a("--batch-size", type=int, default=8, help="requests answered together")
    a("--follow-interval", type=float, default=60.0, help="seconds between checks of the base pointer")
    a("--max-body-bytes", type=int, default=64 << 10)
    a("--max-tokens", type=int, default=1024, help="the most new tokens one request may ask for")
    a("--max-prompt-tokens", type=int, default=2048)
    a("--max-in-flight", type=int, default=64, help="requests queued or generating; more are refused (429)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cortex.serve.once import forecast_once, parse_question, summary

    question = parse_question(args.once) if args.once else None
    if question is not None:  # a question the competition does not ask is refused before anything loads
        from cortex.serve.choose import competition_of
        from cortex.serve.forecast import check_question

        check_question(competition_of(args), *question)
    started = time.monotonic()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    app, _ = build(args, follow=question is None)
    if question is not None:
        loaded = time.monotonic()
        logging.getLogger("httpx").setLevel(logging.WARNING)  # its per-request line would repeat the summary's
        answer = forecast_once(app, args.host, args.port or 0, *question)
        print(summary(answer, time.monotonic() - loaded))
        print(f"served and stopped in {time.monotonic() - started:.1f} s (base loaded in {loaded - started:.1f} s)")
        return 0
    import uvicorn

    port = 8100 if args.port is None else args.port
    log.info("serving on http://%s:%d/v1 (health: /health, metrics: /metrics)", args.host, port)
    uvicorn.run(app, host=args.host, port=port, log_level="warning")
    return 0


def build(args: argparse.Namespace, follow: bool = True):
    """The app and its follower (None unless following the chain's pointer and ``follow``), the first base loaded."""
    from cortex.data import get_source
    from cortex.serve.app import Limits, create_app
    from cortex.serve.base import Follower, Served
    from cortex.serve.choose import choose_base, competition_of
    from cortex.serve.engine import Engine

    competition = competition_of(args)
    source = get_source(args.source)
    limits = Limits(args.max_body_bytes, args.max_tokens, args.max_prompt_tokens, args.max_in_flight)

    def load(path: Path, revision: str) -> Engine:
        return Engine.load(path, revision, device=args.device, dtype=args.dtype, engine=args.engine,
                           batch_size=args.batch_size)

    chosen = choose_base(args, competition)
    served = Served(load(chosen.ref.path, chosen.ref.revision), chosen.ref)
    follower = None
    if chosen.locate is not None and follow:
        store = chosen.store
        follower = Follower(served, chosen.locate, lambda r: r.fetch(store), load, args.follow_interval)
        follower.start()
    log.info("base %s (%s engine)", chosen.ref, served.engine.name)
    return create_app(served, competition, source, limits=limits, follower=follower,
                      model_name=chosen.ref.repo), follower
