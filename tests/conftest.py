"""Shared fixtures. ``localnet_run``: one small `cortex localnet` run per test session, shared by the
tests that look at its results (the summary, and the leaderboard in a browser).

Layout: a module's tests are found from its path (``cortex/adapter/checks.py`` →
``tests/adapter/test_adapter_checks.py``; ``cortex/<module>.py`` → ``tests/core/``; the roles under
``tests/miner/``, ``tests/validator/``, ``tests/averager/``; the benchmarks' smoke tests under
``tests/bench/``), end-to-end tests that cross roles under ``tests/e2e/``, and the shared builders
and fakes under ``tests/support/``, which this file puts on ``sys.path`` (``from validator_fixtures
import …``). Test files keep distinct names, so each imports alone.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = Path(__file__).resolve().parent / "support"
if str(SUPPORT) not in sys.path:
    sys.path.insert(0, str(SUPPORT))


@dataclass(frozen=True)
class LocalnetRun:
    work: Path
    stdout: str


@pytest.fixture(scope="session")
def localnet_run(tmp_path_factory) -> LocalnetRun:
    """2 miners, 2 validators, 2 rounds, a small base: the whole path through neurons/*.py."""
    work = tmp_path_factory.mktemp("localnet") / "work"
    venv = ROOT / ".venv" / "bin" / "cortex"
    cmd = [str(venv) if venv.exists() else "cortex",
           "localnet", "--workdir", str(work), "--miners", "2", "--validators", "2", "--rounds", "2",
           "--base-steps", "12", "--train-steps", "3", "--eval-prompts", "4", "--benchmark-prompts", "6",
           "--no-miner-gate", "--plain"]  # a plumbing run: a 12-step base, so miners publish without beating it
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return LocalnetRun(work, done.stdout)
