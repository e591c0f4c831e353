"""The `cortex` command: one entry point, one sub-command group per area.

Each area owns its sub-commands in its own module and exposes
``register(parser)``; this file only wires them together, importing an area only
when its sub-command is used, so that `cortex --help` and `cortex chain status`
do not pay for importing torch.

The core's own areas are listed in ``AREAS``. The role packages (miner,
validator, averager) add theirs through the ``cortex.commands`` entry-point group
in setup.py, so that nothing in ``cortex`` imports a role package.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
from importlib.metadata import entry_points
import logging
import sys

from cortex.cliargs import ArgumentParser
from cortex.errors import run_command

# (command, module with `register(subparsers)`, one-line help)
AREAS: list[tuple[str, str, str]] = [
    ("chain", "cortex.localchain.cli", "the embedded chain: init, fund, register, advance, status"),
    ("wallet", "cortex.wallets", "offline wallets for the embedded chain"),
    ("localnet", "cortex.localnet.cli", "a whole subnet on this machine, offline: miners, validators, averager"),
    ("data", "cortex.data.cli", "market data, prompts, teacher traces and datasets"),
    ("eval", "cortex.eval.cli", "offline evaluation: run a model over a dataset, backtest forecasts"),
    ("base", "cortex.model.cli", "the tiny offline base model: bootstrap (build, pre-train, publish)"),
    ("leaderboard", "cortex.leaderboard.cli", "the subnet's leaderboard: serve it (FastAPI) or export a static copy"),
    ("serve", "cortex.serve.cli", "the current base behind an OpenAI-compatible API and a forecast API"),
    ("export", "cortex.export.cli", "the current base to a Hugging Face folder with its lineage, and GGUF"),
]
DEBUG_FLAG = "--logging.debug"


def _module_summary(module_name: str) -> str:
    """The first line of a module's docstring, read from its source without importing it."""
    try:
        spec = importlib.util.find_spec(module_name)
        with open(spec.origin, encoding="utf-8") as f:  # type: ignore[union-attr,arg-type]
            doc = ast.get_docstring(ast.parse(f.read())) or ""
    except (ImportError, AttributeError, OSError, TypeError, SyntaxError, ValueError):
        return ""
    return doc.strip().splitlines()[0].rstrip(".") if doc.strip() else ""


def areas() -> list[tuple[str, str, str]]:
    """The core's areas, then those the role packages register as ``cortex.commands`` entry points."""
    plugins = [(ep.name, ep.value.split(":")[0], "") for ep in entry_points(group="cortex.commands")]
    return AREAS + sorted(p for p in plugins if p[0] not in {a[0] for a in AREAS})


def _finish(parser: argparse.ArgumentParser) -> None:
    """Through the whole tree of sub-commands (each a ``cortex.cliargs.ArgumentParser``: one-line
    errors, defaults in ``--help``): ``--logging.debug`` accepted after the sub-command as well as before it."""
    for action in parser._actions:  # argparse keeps its sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                if DEBUG_FLAG not in child._option_string_actions:
                    child.add_argument(DEBUG_FLAG, dest="debug", action="store_true", default=argparse.SUPPRESS,
                                       help="verbose logs, and the traceback of an unexpected error")
                _finish(child)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with ``only``, that area's sub-commands in full and the others as names
    (their modules are not imported)."""
    parser = ArgumentParser(prog="cortex", description=__doc__.splitlines()[0])
    parser.add_argument(DEBUG_FLAG, dest="debug", action="store_true",
                        help="verbose logs, and the traceback of an unexpected error")
    parser.add_argument("--env-file", dest="env_file", metavar="PATH", default=None,
                        help="read tokens and settings from this file (default: the checkout's .env, never the cwd's)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name, help_text in areas():
        help_text = help_text or _module_summary(module_name)
        if name != only:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(module_name)
        module.register(sub.add_parser(name, help=help_text))
    _finish(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    known = {name for name, _, _ in areas()}
    first = next((a for a in argv if a in known), None)  # not the first word: `--env-file PATH` comes before
    parser = build_parser(first if first in known else None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run_command(f"cortex {args.command}", lambda: args.func(args), debug=args.debug,
                       env_file=args.env_file)


if __name__ == "__main__":
    sys.exit(main())
