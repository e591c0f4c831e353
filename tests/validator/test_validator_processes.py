"""Two validator processes (``python neurons/validator.py --once``) on one chain set identical weights,
from the same questions, answers and scores."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from chainkit import NETUID
from validator_fixtures import BLOCKS_PER_DAY, COMP, START_DAY, build_artifacts, make_world

from cortex.protocol.scores import ScoreTable
from validator.ledger import Ledger

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def command(world, name: str, state: Path) -> list[str]:
    return [sys.executable, str(ROOT / "neurons" / "validator.py"), "--netuid", str(NETUID),
            "--wallet.name", name, "--wallet.hotkey", "default", "--wallet.path", str(world.chain.wallet_path),
            "--subtensor.network", "embedded", "--chain.path", str(world.chain.path), "--once",
            "--engine", "transformers", "--device", "cpu", "--threads", "1", "--wandb.off",
            "--store", f"local:{world.store.root}", "--state", str(state), "--source", "synthetic",
            "--competitions", str(world.competitions_file), "--clock.start-day", START_DAY,
            "--clock.blocks-per-day", str(BLOCKS_PER_DAY)]


def test_two_validator_processes_set_identical_weights(tmp_path, tmp_path_factory):
    art = build_artifacts(tmp_path_factory.getbasetemp() / "validator-artifacts")
    world = make_world(tmp_path, art, bad=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    procs = {name: subprocess.Popen(command(world, name, tmp_path / name / "state.json"), env=env, cwd=tmp_path,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for name in world.validators}
    logs = {name: p.communicate(timeout=600)[0] for name, p in procs.items()}
    for name, p in procs.items():
        assert p.returncode == 0, logs[name][-3000:]
        assert "set weights on 3 uids" in logs[name]  # strong, medium, weak: the copy earns nothing
        assert "→ weight" in logs[name]  # the log says why each model got what it got
    rows = world.chain.sub.weights.weights(NETUID)
    a, b = (rows[world.uid(name)] for name in world.validators)
    assert a == b and len(a) == 3
    assert a[world.uid("strong")] > a[world.uid("medium")] > a[world.uid("weak")] > 0
    tables = [ScoreTable.read(tmp_path / name / "scores" / "latest.json") for name in world.validators]
    assert tables[0].weights == tables[1].weights
    assert tables[0].competitions[COMP].scores == tables[1].competitions[COMP].scores
    ledgers = []
    for name in world.validators:
        with Ledger(tmp_path / name / "ledger.sqlite") as ledger:
            ledgers.append(ledger.entries(COMP, "2024-01-01", "2024-12-31"))
    assert ledgers[0] == ledgers[1] and ledgers[0]  # the same answers to the same questions, the same rewards
