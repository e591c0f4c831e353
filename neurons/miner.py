"""The Cortex miner: train a DoRA/LoRA adapter, check it, publish it with an on-chain commitment.

    python neurons/miner.py --netuid 1 --wallet.name miner --wallet.hotkey default \\
        --subtensor.network embedded --chain.path ~/.cortex/chain.db --competition cortex-tiny \\
        --config configs/tiny-cpu.yaml [--offline] [--push-only DIR] [--output-dir DIR] [--source SRC] \\
        [--store local:DIR|hf] [--base DIR] [--wandb.off] [--force] [--resume] [--loop]

The shared flags (netuid, wallet, network, store, source, wandb) are ``cortex.neuron``'s; docs/miner.md
explains every flag and configuration key.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cortex import neuron
from cortex.cliargs import ArgumentParser
from cortex.errors import CortexError, run_command

log = logging.getLogger("cortex.miner")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="neurons/miner.py", description=__doc__.splitlines()[0])
    neuron.add_args(parser, clock=False)  # --netuid, --wallet.*, --subtensor.network, --chain.path, --store, --source, --wandb.*
    a = parser.add_argument
    a("--competition", "--competitions", dest="competition", default="cortex-tiny", help="competition id (built-in) or a competitions YAML/JSON file")
    a("--competition.id", dest="competition_id", default=None, help="the id to pick from a competitions file")
    a("--config", default=None, help="training YAML (configs/tiny-cpu.yaml, configs/gpu-8b-qlora.yaml, ...)")
    a("--output-dir", default="runs/miner", help="where adapter/, metrics.json and checkpoints go")
    a("--offline", action="store_true", help="train and evaluate only: no chain, no store")
    a("--push-only", default=None, metavar="DIR", help="publish a trained output dir (or adapter folder); no training")
    a("--base", default=None, metavar="DIR", help="a local base folder instead of the competition's base")
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
    """The run's :class:`miner.config.MinerConfig`: the shared neuron flags (``cortex.neuron``; ``--source``
    unset: the training config's, then csv:$CORTEX_MARKET_DATA, then synthetic) and the miner's own."""
    from miner.config import MinerConfig

    return MinerConfig(
        **neuron.neuron_fields(args, need_store=not args.offline, default_source=False),
        competition=competition(args), output_dir=Path(args.output_dir).expanduser(), no_chain=args.offline,
        base=args.base, push_only=Path(args.push_only).expanduser() if args.push_only else None, force=args.force,
        resume=args.resume, loop=args.loop, loop_interval_s=args.loop_interval, loop_rounds=args.loop_rounds,
    )


def preload_backend(cfg) -> None:
    """Import Unsloth first when the config chooses it: it patches transformers, TRL and peft as it is
    imported, so it must come before them (nothing above this point imports them)."""
    if cfg.backend != "unsloth":
        return
    from miner.backends import check_backend

    check_backend(cfg)  # no GPU or no package: a clear message instead of Unsloth's own error
    loaded = sorted(m for m in ("transformers", "trl", "peft") if m in sys.modules)
    if loaded:
        log.warning("unsloth is imported after %s: its patches may not apply", ", ".join(loaded))
    import unsloth  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    neuron.setup_logging(args.debug)

    def body() -> None:
        from miner.config import load_config

        if args.offline and args.push_only:
            raise CortexError("--push-only publishes, --offline never does: pick one")
        cfg = load_config(args.config)
        if not args.push_only:  # (publishing alone trains nothing)
            preload_backend(cfg)  # before anything imports transformers, TRL or peft
        from miner.run import run

        metrics = run(options(args), cfg) or {}
        grpo = metrics.get("stages", {}).get("grpo", {})
        shown = {"eval_loss_initial": metrics.get("eval_loss_initial"), "eval_loss_best": metrics.get("eval_loss_best"),
                 "grpo_reward_mean": grpo.get("reward_mean"), **{k: metrics.get(k) for k in (
                     "heldout_reward_base", "heldout_reward_adapter", "publish_reason", "published")}}
        for key, value in shown.items():
            if value is not None:
                print(f"{key}: {value}")

    return run_command("miner", body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
