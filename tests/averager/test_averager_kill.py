"""A merge killed halfway (SIGKILL) publishes nothing half-made; the restarted averager publishes once.

The weights are set on chain directly (0.6, 0.3, 0.1 to ``medium``, ``copy``, ``weak``; no
validator round), so ``copy`` has incentive here and the round also shows the averager's own
selection end to end: the later duplicate is dropped, ``weak`` is not among the two with the most
incentive, and the next round skips what the new base already holds.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import bittensor as bt
import pytest
from averager_fixtures import BLOCKS_PER_DAY, COMPETITION16, START_DAY, make_world
from chainkit import NETUID
from validator_fixtures import TINY_REPO, build_artifacts

from averager.stream import PAUSE_ENV
from cortex.model.pointer import current_base

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def command(root: Path, chain) -> list[str]:
    return [sys.executable, str(ROOT / "neurons" / "averager.py"), "--netuid", str(NETUID), "--wallet.name", "owner",
            "--wallet.path", str(chain.wallet_path), "--subtensor.network", "embedded", "--chain.path", str(chain.path),
            "--competition", str(root / "competitions.yaml"), "--once", "--state", str(root / "averager"),
            "--max-inputs", "2", "--max-weight", "1", "--clock.start-day", START_DAY,
            "--clock.blocks-per-day", str(BLOCKS_PER_DAY), "--no-progress", "--wandb.off"]


def test_a_merge_killed_halfway_publishes_nothing_and_the_restart_publishes_once(tmp_path, tmp_path_factory):
    art = build_artifacts(tmp_path_factory.getbasetemp() / "validator-artifacts")
    chain, store, genesis = make_world(tmp_path, art)
    uids = [chain.uid(n) for n in ("medium", "copy", "weak")]
    chain.advance(11 - chain.sub.block)  # the epoch at block 10 gives the validator its permit
    chain.sub.execute(bt.SetWeights(netuid=NETUID, uids=uids, weights=[0.6, 0.3, 0.1], version_key=0),
                      chain.wallets["validator0"]).raise_for_failure()
    chain.advance(21 - chain.sub.block)  # the epoch at block 20 gives the miners incentive
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "CORTEX_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    work = tmp_path / "averager" / "work"
    proc = subprocess.Popen(command(tmp_path, chain), env={**env, PAUSE_ENV: "1"}, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while not list(work.glob("round-*/.merged.partial-*/*.safetensors")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        time.sleep(0.2)
    time.sleep(1.5)  # a few tensors into the shard
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert list(work.glob("round-*/.merged.partial-*")), "the kill did not land in the middle of the merge"
    assert not list(work.glob("round-*/merged"))
    assert store.revisions(TINY_REPO) == [genesis]  # nothing uploaded
    assert current_base(chain.sub, NETUID, COMPETITION16, store).revision == genesis  # nothing committed
    assert not (tmp_path / "averager" / "rounds" / "latest.json").exists()

    done = subprocess.run(command(tmp_path, chain), env=env, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "left by an interrupted round" in done.stderr
    record = json.loads((tmp_path / "averager" / "rounds" / "latest.json").read_text())
    assert record["round"] == 1 and record["status"] == "published", record
    inputs = {i["hotkey"]: i for i in record["inputs"]}
    hotkey = {n: chain.wallets[n].hotkey.ss58_address for n in ("medium", "copy", "weak")}
    assert inputs[hotkey["medium"]]["weight"] == 1.0  # the two with the most incentive: medium and its copy …
    assert inputs[hotkey["copy"]]["reason"] == "duplicate"  # … the same update, committed later: dropped
    assert inputs[hotkey["weak"]]["reason"] == "not_top"
    revision = record["published"].split("@")[1]
    assert store.revisions(TINY_REPO) == [revision, genesis]  # exactly one new revision
    assert current_base(chain.sub, NETUID, COMPETITION16, store).revision == revision
    assert not work.exists()
    files = {f.path for f in store.list_files(TINY_REPO, revision)}
    assert not any(".partial" in f for f in files) and "model.safetensors" in files

    again = subprocess.run(command(tmp_path, chain), env=env, cwd=tmp_path, capture_output=True, text=True,
                           check=False, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads((tmp_path / "averager" / "rounds" / "latest.json").read_text())
    assert second["round"] == 2 and second["status"] == "skipped"  # medium is in the base now; nothing new
    reasons = {i["hotkey"]: i["reason"] for i in second["inputs"]}
    assert reasons[hotkey["medium"]] == "already_merged"  # still paid (no new weights), but the base holds it
    assert reasons[hotkey["copy"]] == reasons[hotkey["weak"]] == "stale_base"  # trained on the genesis base
    assert store.revisions(TINY_REPO) == [revision, genesis]


def test_the_entry_point_says_what_is_wrong_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "neurons" / "averager.py"), "--netuid", "1", "--competition",
                          "no-such-competition", "--chain.path", str(tmp_path / "chain.db")],
                         capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("averager: error: unknown competition")
