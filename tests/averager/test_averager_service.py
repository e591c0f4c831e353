"""The averager as a service: one round every K epochs on the chain's clock; a failed round is
logged and retried at the next one, never the end of the service."""

from __future__ import annotations

import pytest
from chainkit import NETUID, make_chain

from averager.config import AveragerConfig
from averager.service import Averager, Parts
from cortex.errors import CortexError
from cortex.hub.local import LocalStore
from cortex.protocol.competition import CORTEX_TINY
from cortex.wandb_log import WandbConfig

TEMPO = 10


class Stop(Exception):
    """Ends the service loop from the test."""


def service(tmp_path, every_epochs: int, once: bool = False):
    chain = make_chain(tmp_path, tempo=TEMPO)
    chain.advance(3)
    cfg = AveragerConfig(netuid=NETUID, competition=CORTEX_TINY, state=tmp_path / "state",
                         every_epochs=every_epochs, once=once, wandb=WandbConfig(enabled=False))
    averager = Averager(Parts(cfg, chain.sub, chain.wallets.get("owner"), LocalStore(tmp_path / "store")))
    return chain, averager


def test_rounds_run_every_k_epochs_and_a_failed_round_does_not_stop_the_service(tmp_path, monkeypatch):
    chain, averager = service(tmp_path, every_epochs=2)
    started, waits = [], []

    def run_round():
        started.append(int(chain.sub.block))
        if len(started) == 2:
            raise CortexError("the store is unreachable")  # logged; the service goes on
        if len(started) == 4:
            raise Stop
        return {"round": len(started), "status": "skipped"}

    def wait_for_block(target):
        waits.append(target)
        chain.advance(target - int(chain.sub.block))

    monkeypatch.setattr(averager, "run_round", run_round)
    monkeypatch.setattr(chain.sub, "wait_for_block", wait_for_block)
    with pytest.raises(Stop):
        averager.run()
    assert started == [3, 21, 41, 61]  # just after every second epoch boundary, failures included
    assert waits == [21, 41, 61]


def test_once_returns_the_round_and_raises_its_failure(tmp_path, monkeypatch):
    _, averager = service(tmp_path, every_epochs=1, once=True)
    monkeypatch.setattr(averager, "run_round", lambda: {"round": 1, "status": "rejected"})
    assert averager.run() == {"round": 1, "status": "rejected"}

    def failing():
        raise CortexError("no base")

    monkeypatch.setattr(averager, "run_round", failing)
    with pytest.raises(CortexError, match="no base"):
        averager.run()
