"""The command lines of the subnet's processes: the same `neurons/*.py` entry points a real deployment runs.

Each role gets the bittensor-style flags (``--netuid``, ``--wallet.*``, ``--subtensor.network
embedded --chain.path``) and the local store; what a round reads back from each process (its
metrics, score table or round record) is read here too.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from cortex.localnet.config import REPO_ROOT, Settings
from cortex.localnet.processes import Command
from cortex.localnet.setup import benchmark_file
from cortex.protocol.metrics import RunMetrics
from cortex.protocol.records import R, RecordError
from cortex.protocol.rounds import AveragerRound

log = logging.getLogger(__name__)

NEURONS = REPO_ROOT / "neurons"


def child_env(s: Settings) -> dict[str, str]:
    """One torch thread per process, nothing online, unbuffered logs, the checkout importable."""
    threads = str(s.threads)
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}


def _chain_flags(s: Settings, wallet: str) -> list[str]:
    return ["--netuid", str(s.netuid), "--wallet.name", wallet, "--wallet.hotkey", "default",
            "--wallet.path", str(s.wallet_path), "--subtensor.network", "embedded", "--chain.path", str(s.chain_path)]


def miner_dir(s: Settings, name: str, round_: int) -> Path:
    return s.workdir / "miners" / name / f"round-{round_}"


def miner_command(s: Settings, name: str, round_: int, config: Path) -> Command:
    argv = [sys.executable, str(NEURONS / "miner.py"), *_chain_flags(s, name), "--competition", str(s.competition_file),
            "--config", str(config), "--output-dir", str(miner_dir(s, name, round_)), "--source", s.market,
            "--store", f"local:{s.store_path}", "--wandb.off"]
    if not s.miner_gate:  # --no-miner-gate: every miner publishes, beaten by the base or not
        argv.append("--force")
    return Command(name, argv, s.log_path(round_, name))


def validator_command(s: Settings, name: str, round_: int) -> Command:
    argv = [sys.executable, str(NEURONS / "validator.py"), *_chain_flags(s, name), "--once", "--device", "cpu",
            "--threads", str(s.threads), "--store", f"local:{s.store_path}", "--state", str(s.validator_state(name)),
            "--source", s.market, "--competitions", str(s.competition_file), *_clock_flags(s),
            "--round.blocks", str(s.tempo), "--wandb.off"]
    return Command(name, argv, s.log_path(round_, name))


def averager_dir(s: Settings) -> Path:
    return s.workdir / "averager"


def averager_available() -> bool:
    return (NEURONS / "averager.py").is_file()


def averager_command(s: Settings, round_: int) -> Command:
    """The subnet owner's hotkey is the competition's averager (``BaseModelRef.averager_hotkey`` unset). It runs
    alone in its phase, so it takes every heavy job's threads, as the bootstrap does."""
    scores = [x for d in s.validator_state_dirs() for x in ("--scores", str(d))]
    argv = [sys.executable, str(NEURONS / "averager.py"), *_chain_flags(s, "owner"), "--competition",
            str(s.competition_file), "--store", f"local:{s.store_path}", "--state", str(averager_dir(s)), "--once",
            "--source", s.market, *_clock_flags(s), *scores, "--benchmark", str(benchmark_file(s)), "--no-progress",
            "--threads", str(s.alone_threads),
            "--wandb.off"]  # the defaults: a lone earner at full weight, several blended, then the greedy soup
    return Command("averager", argv, s.log_path(round_, "averager"))


def _clock_flags(s: Settings) -> list[str]:
    return ["--clock", "simulated", "--clock.start-day", s.start_day.isoformat(),
            "--clock.blocks-per-day", str(s.blocks_per_day)]


# --- what each process leaves behind --------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def miner_metrics(s: Settings, name: str, round_: int) -> dict[str, Any]:
    """The miner's ``RunMetrics`` as plain data; {} when the round left none (or an unreadable one)."""
    record = _record(RunMetrics, miner_dir(s, name, round_) / "metrics.json")
    return record.plain() if record else {}


def score_table(s: Settings, name: str) -> dict[str, Any]:
    return _read_json(s.validator_state(name).parent / "scores" / "latest.json") or {}


def averager_rounds(s: Settings) -> list[dict[str, Any]]:
    """Every round record the averager wrote (``AveragerRound`` as plain data), oldest first."""
    folder = averager_dir(s) / "rounds"
    records = [_record(AveragerRound, p) for p in sorted(folder.glob("round-*.json"))] if folder.is_dir() else []
    return [r.to_json() for r in records if r]


def _record(cls: type[R], path: Path) -> R | None:
    """The record in ``path``; None when there is none, or it is not readable (logged)."""
    if not path.is_file():
        return None
    try:
        return cls.read(path)
    except RecordError as exc:
        log.warning("%s", exc)
        return None
