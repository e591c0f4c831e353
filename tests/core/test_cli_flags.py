"""One flag name for one thing, older spellings kept as aliases (issue 20), defaults in every `--help`,
and `cortex --help` without importing any area."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from cortex.cli import build_parser
from cortex.cliargs import ArgumentParser


def cortex_args(*argv: str) -> argparse.Namespace:
    return build_parser(argv[0]).parse_args(list(argv))


@pytest.mark.parametrize("old, new", [("--path", "--chain.path")])
def test_chain_path_alias(old, new):
    for action in ("status", "advance"):
        assert cortex_args("chain", action, old, "a.db").path == cortex_args("chain", action, new, "a.db").path == "a.db"


def test_progress_flags_are_aliases():
    assert cortex_args("data", "build", "--out", "x", "--plain").no_progress is True
    assert cortex_args("data", "build", "--out", "x", "--no-progress").no_progress is True
    assert cortex_args("base", "bootstrap", "--out", "x", "--plain").no_progress is True
    assert cortex_args("localnet", "--no-progress").live is False
    assert cortex_args("localnet", "--plain").live is False
    assert cortex_args("merge", "--plain", "--base", "b", "--adapter", "a", "--weight", "1", "--out", "o").progress is False


def role_parser(role: str) -> argparse.ArgumentParser:
    if role == "miner":
        from neurons.miner import build_parser as miner_parser

        return miner_parser()
    parser = ArgumentParser(prog=role)
    if role == "validator":
        from validator.config import add_args
    else:
        from averager.config import add_args
    add_args(parser)
    return parser


@pytest.mark.parametrize("role, dest, expected", [
    ("miner", "competition", "cortex-8b"),
    ("averager", "competition", "cortex-8b"),
    ("validator", "competitions", ["cortex-8b"]),
])
def test_competition_flag_both_spellings(role, dest, expected):
    parser = role_parser(role)
    for flag in ("--competition", "--competitions"):
        assert getattr(parser.parse_args(["--netuid", "1", flag, "cortex-8b"]), dest) == expected
    assert cortex_args("base", "history", "--netuid", "1", "--competitions", "cortex-8b").competition == "cortex-8b"


def test_averager_progress_alias():
    assert role_parser("averager").parse_args(["--netuid", "1", "--competition", "x", "--plain"]).progress is False


@pytest.mark.parametrize("argv, shown", [
    (["chain", "init"], "--tempo TEMPO         subnet hyperparameter tempo (default: 360)"),
    (["data", "show"], "(default: train)"),
    (["leaderboard"], "(default: 8000)"),
    (["eval", "predict"], "(default: test)"),
])
def test_defaults_in_help(argv, shown, capsys):
    with pytest.raises(SystemExit):
        build_parser(argv[0]).parse_args([*argv, "--help"])
    assert shown in capsys.readouterr().out


def test_top_level_help_imports_no_area():
    """`cortex --help` lists every area from names alone: no area module (nor torch) is imported."""
    code = ("import sys\nfrom cortex.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "loaded = sorted(m for m in sys.modules if m in ('torch', 'transformers', 'datasets', 'bittensor') "
            "or m.endswith('.cli') and m != 'cortex.cli')\nprint('LOADED', loaded)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "chain" in done.stdout and "leaderboard" in done.stdout and "merge" in done.stdout
    assert "LOADED []" in done.stdout, done.stdout[-500:]
