"""``cortex serve``: the current base of a competition behind an OpenAI-compatible API and a forecast API.

    cortex serve --base work/base                                    # a model folder
    cortex serve --store local:work/chain/store --revision REV        # a store revision of cortex/tiny-llama
    cortex serve --chain.path work/chain/chain.db --netuid 1          # follow the chain's base pointer

Binds 127.0.0.1 unless ``--host`` says otherwise. See docs/serving.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cortex.chain.connect import EMBEDDED
from cortex.errors import CortexError

log = logging.getLogger(__name__)


def register(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--base", metavar="DIR", help="serve the model in this folder (no following)")
    a("--store", default=None, help="model store: local:DIR or hf (default offline: local:<dir of --chain.path>/store)")
    a("--revision", default=None, help="serve this revision of --repo from --store (no following)")
    a("--repo", default=None, help="the base repo (default: the competition's)")
    a("--subtensor.network", dest="network", default=EMBEDDED, help="embedded (with --chain.path), finney, test …")
    a("--chain.path", dest="chain_path", default=None, help="the embedded chain's file: follow its base pointer")
    a("--netuid", type=int, default=1, help="the subnet's netuid (default 1)")
    a("--competition", default="cortex-tiny", help="built-in id, or a competitions YAML/JSON file")
    a("--competition.id", dest="competition_id", default=None, help="the id to pick from a file")
    a("--source", default=None, help="market data for /v1/forecast: synthetic[:SEED] (offline default), csv:DIR, binance")
    a("--host", default="127.0.0.1", help="the address to bind (default loopback only)")
    a("--port", type=int, default=8100)
    a("--engine", default="auto", choices=("auto", "transformers", "vllm"),
      help="auto: vLLM when installed and a GPU is visible, else the project's transformers engine")
    a("--device", default="auto", help="transformers engine: auto, cpu, cuda or cuda:N")
    a("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    a("--batch-size", type=int, default=8, help="requests answered together")
    a("--follow-interval", type=float, default=60.0, help="seconds between checks of the base pointer")
    a("--max-body-bytes", type=int, default=64 << 10)
    a("--max-tokens", type=int, default=1024, help="the most new tokens one request may ask for")
    a("--max-prompt-tokens", type=int, default=2048)
    a("--max-in-flight", type=int, default=64, help="requests queued or generating; more are refused (429)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    app, _ = build(args)
    log.info("serving on http://%s:%d/v1 (health: /health, metrics: /metrics)", args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def build(args: argparse.Namespace):
    """The app and its follower (None unless following the chain), the first base loaded."""
    from cortex.data import get_source
    from cortex.model.pointer import BaseRef, current_base, local_base
    from cortex.neuron import store_spec
    from cortex.protocol.competition import find_competition
    from cortex.serve.app import Limits, create_app
    from cortex.serve.base import Follower, Served
    from cortex.serve.engine import Engine

    competition = find_competition(args.competition, args.competition_id)
    repo = args.repo or competition.base.repo
    source = get_source(args.source)
    limits = Limits(args.max_body_bytes, args.max_tokens, args.max_prompt_tokens, args.max_in_flight)

    def load(path: Path, revision: str) -> Engine:
        return Engine.load(path, revision, device=args.device, dtype=args.dtype, engine=args.engine,
                           batch_size=args.batch_size)

    follower = None
    if args.base:
        folder = Path(args.base).expanduser()
        if not folder.is_dir():
            raise CortexError(f"--base {args.base}: no model folder there")
        ref = local_base(folder, repo)
        served = Served(load(ref.path, ref.revision), ref)
    else:
        if args.network == EMBEDDED and not args.chain_path and not args.store:
            raise CortexError("say which base to serve: --base DIR, --store SPEC --revision REV, or --chain.path FILE")
        if args.network == EMBEDDED and args.chain_path and not Path(args.chain_path).is_file():
            raise CortexError(f"no chain file at {args.chain_path}: create one with `cortex chain init --path …`")
        store = _open_store(store_spec(args.store, args.network, args.chain_path))
        if args.revision:
            ref = BaseRef(repo, args.revision).fetch(store)
            served = Served(load(ref.path, ref.revision), ref)
        else:
            from cortex.chain.connect import connect

            sub = connect(args.network, args.chain_path)

            def locate() -> BaseRef | None:
                return current_base(sub, args.netuid, competition, store)

            first = locate()
            if first is None:
                raise CortexError(f"{competition.id} has no base yet (no pointer, no pinned revision, nothing in the store)")
            ref = first.fetch(store)
            served = Served(load(ref.path, ref.revision), ref)
            follower = Follower(served, locate, lambda r: r.fetch(store), load, args.follow_interval)
            follower.start()
    log.info("base %s (%s engine)", ref, served.engine.name)
    return create_app(served, competition, source, limits=limits, follower=follower, model_name=repo), follower


def _open_store(spec: str):
    from cortex.hub.store import StoreError, open_store

    try:
        return open_store(spec)
    except StoreError as exc:
        raise CortexError(str(exc)) from None
