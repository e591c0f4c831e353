"""The `cortex` command: one entry point, one sub-command group per area.

Each area owns its sub-commands in its own module and exposes
``register(parser)``; this file only wires them together, importing each area
lazily so that `cortex chain status` does not pay for importing torch.

The core's own areas are listed in ``AREAS``. The role packages (miner,
validator, averager) add theirs through the ``cortex.commands`` entry-point group
in setup.py, so that nothing in ``cortex`` imports a role package.
"""

from __future__ import annotations

import argparse
import importlib
from importlib.metadata import entry_points
import logging
import sys

from cortex.errors import run_command

# (command, module with `register(subparsers)`, one-line help)
AREAS: list[tuple[str, str, str]] = [
    ("chain", "cortex.localchain.cli", "the embedded chain: init, fund, advance, status"),
    ("wallet", "cortex.wallets", "offline wallets for the embedded chain"),
    ("walkthrough", "cortex.walkthrough", "the embedded chain, store and commitments, end to end"),
    ("localnet", "cortex.localnet.cli", "a whole subnet on this machine, offline: miners, validators, averager"),
    ("data", "cortex.data.cli", "market data, prompts, teacher traces and datasets"),
    ("eval", "cortex.eval.cli", "offline evaluation: backtest forecasts against outcomes"),
    ("base", "cortex.model.cli", "the tiny offline base model: bootstrap (build, pre-train, publish)"),
    ("leaderboard", "cortex.leaderboard.cli", "the subnet's leaderboard: serve it (FastAPI) or export a static copy"),
    ("serve", "cortex.serve.cli", "the current base behind an OpenAI-compatible API and a forecast API"),
]


def areas() -> list[tuple[str, str, str]]:
    """The core's areas, then those the role packages register as ``cortex.commands`` entry points."""
    plugins = [(ep.name, ep.value.split(":")[0], "") for ep in entry_points(group="cortex.commands")]
    return AREAS + sorted(p for p in plugins if p[0] not in {a[0] for a in AREAS})


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cortex", description=__doc__.splitlines()[0])
    parser.add_argument("--logging.debug", dest="debug", action="store_true", help="verbose logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name, help_text in areas():
        if only is not None and name != only:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(module_name)
        help_text = help_text or (module.__doc__ or "").strip().splitlines()[0].rstrip(".")
        module.register(sub.add_parser(name, help=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    known = {name for name, _, _ in areas()}
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(first if first in known else None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run_command(f"cortex {args.command}", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
