"""Several processes on one chain file: nothing lost, nothing half-written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import bittensor as bt
import pytest
from chainkit import NETUID, make_chain

from cortex.localchain.store import ChainFile

WORKER = Path(__file__).parents[1] / "support" / "chain_worker.py"
ROUNDS = 8


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_processes_commit_and_set_weights(tmp_path):
    c = make_chain(tmp_path, tempo=1000, weights_rate_limit=0, commitment_max_space=100_000)
    for name in ("v1", "v2"):
        wallet = c.register(name)
        c.sub.execute(bt.AddStake(netuid=NETUID, hotkey_ss58=wallet.hotkey.ss58_address, amount_tao=10),
                      wallet).raise_for_failure()
    c.chain.advance(1000)  # an epoch hands out the validator permits
    workers = [spawn(str(c.path), str(c.wallet_path), name, str(ROUNDS), "ops") for name in ("v1", "v2")]
    for worker in workers:
        out, _ = worker.communicate(timeout=300)
        assert worker.returncode == 0 and "done" in out
    with ChainFile(c.path).read() as s:
        rows = s.conn.execute(
            "SELECT signer, function, success FROM extrinsics WHERE function IN"
            " ('set_commitment', 'set_mechanism_weights')"
        ).fetchall()
    for name in ("v1", "v2"):
        hotkey = c.wallets[name].hotkey.ss58_address
        mine = [(f, ok) for signer, f, ok in rows if signer == hotkey]
        assert sorted(mine) == sorted([("set_commitment", 1)] * ROUNDS + [("set_mechanism_weights", 1)] * ROUNDS)
        assert c.sub.identity.commitment(NETUID, hotkey).data == f"{name}-{ROUNDS - 1}"
    weights = c.sub.weights.weights(NETUID)
    assert weights[c.uid("v1")][1] == pytest.approx(ROUNDS / (ROUNDS + 1), abs=1e-4)


@pytest.mark.slow
def test_killed_writer_leaves_a_consistent_file(tmp_path):
    c = make_chain(tmp_path)
    worker = spawn(str(c.path), str(c.wallet_path), "-", "0", "transfers")
    assert worker.stdout.readline().strip() == "started"
    time.sleep(2.0)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    chain = ChainFile(c.path)  # opens, passes the integrity check
    with chain.read() as s:
        assert s.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        balances = sum(json.loads(v)["data"]["free"] for (v,) in s.conn.execute(
            "SELECT value FROM storage WHERE item='System.Account'"))
        issued = s.get("Balances.TotalIssuance")
        transfers = s.conn.execute("SELECT COUNT(*) FROM extrinsics WHERE function='transfer_keep_alive'").fetchone()[0]
    assert balances == issued  # every transfer landed whole or not at all
    assert transfers > 0
    assert c.sub.block >= 0  # and the SDK still reads it
