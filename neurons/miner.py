"""The Cortex miner: train a DoRA/LoRA adapter, check it, publish it with an on-chain commitment.

    python neurons/miner.py --netuid 1 --wallet.name miner --wallet.hotkey default \\
        --subtensor.network embedded --chain.path ~/.cortex/chain.db --competition cortex-tiny \\
        --config configs/tiny-cpu.yaml [--offline] [--push-only DIR] [--output-dir DIR] [--source SRC] \\
        [--store local:DIR|hf] [--base DIR] [--wandb.off] [--force] [--resume] [--loop]

docs/miner.md explains every flag and configuration key.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cortex.chain.connect import EMBEDDED
from cortex.errors import CortexError, run_command
from cortex.flags import add_neuron_args, open_wallet, setup_logging

log = logging.getLogger("cortex.miner")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neurons/miner.py", description=__doc__.splitlines()[0])
    add_neuron_args(parser)
    a = parser.add_argument
    a("--competition", default="cortex-tiny", help="competition id (built-in) or a competitions YAML/JSON file")
    a("--competition.id", dest="competition_id", default=None, help="the id to pick from a competitions file")
    a("--config", default=None, help="training YAML (configs/tiny-cpu.yaml, configs/gpu-8b-qlora.yaml, ...)")
    a("--output-dir", default="runs/miner", help="where adapter/, metrics.json and checkpoints go")
    a("--offline", action="store_true", help="train and evaluate only: no chain, no store")
    a("--push-only", default=None, metavar="DIR", help="publish a trained output dir (or adapter folder); no training")
    a("--source", default=None, help="market data: csv:DIR, synthetic[:SEED], binance (default: config, "
                                     "then csv:$CORTEX_MARKET_DATA, then synthetic)")
    a("--store", default=None, help="model store: hf (real networks) or local:DIR (default beside --chain.path)")
    a("--base", default=None, metavar="DIR", help="a local base folder instead of the competition's base")
    a("--wandb.off", dest="wandb_off", action="store_true", help="do not log to wandb (offline mode by default)")
    a("--force", action="store_true", help="publish even if the adapter does not beat the base / last adapter")
    a("--resume", action="store_true", help="resume training from the newest checkpoint in the output dir")
    a("--loop", action="store_true", help="keep mining: a new round against fresh data and the newest base")
    a("--loop.interval", dest="loop_interval", type=float, default=3600.0, help="seconds between rounds")
    a("--loop.rounds", dest="loop_rounds", type=int, default=None, help="stop after N rounds (default: never)")
    return parser


def competition(args):
    from cortex.protocol.competition import find_competition

    return find_competition(args.competition, args.competition_id)


def options(args):
    from miner.run import Options

    offline = args.offline
    store = args.store
    if not offline and store is None:
        if args.network != EMBEDDED:
            store = "hf"
        elif args.chain_path:
            store = f"local:{Path(args.chain_path).expanduser().resolve().parent / 'store'}"
        else:
            raise CortexError("--subtensor.network embedded needs --chain.path (and --store local:DIR)")
    return Options(
        competition=competition(args), output_dir=Path(args.output_dir).expanduser(), offline=offline,
        netuid=args.netuid, network=args.network, chain_path=args.chain_path,
        wallet=None if offline else open_wallet(args), store=store, source=args.source, base=args.base,
        push_only=Path(args.push_only).expanduser() if args.push_only else None, force=args.force,
        resume=args.resume, wandb=not args.wandb_off, loop=args.loop, loop_interval_s=args.loop_interval,
        loop_rounds=args.loop_rounds,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.debug)

    def body() -> None:
        from miner.config import load_config
        from miner.run import run

        if args.offline and args.push_only:
            raise CortexError("--push-only publishes, --offline never does: pick one")
        metrics = run(options(args), load_config(args.config))
        keys = ("eval_loss_initial", "eval_loss_best", "grpo_reward_mean", "heldout_reward_base",
                "heldout_reward_adapter", "publish_reason", "published")
        for key in keys:
            if key in (metrics or {}):
                print(f"{key}: {metrics[key]}")

    return run_command("miner", body)


if __name__ == "__main__":
    sys.exit(main())
