"""Orchestration without training: data source choice, base resolution, the loop."""

from __future__ import annotations

from pathlib import Path

import pytest
from chainkit import NETUID, make_chain

from cortex.chain.commitments import publish
from cortex.errors import CortexError
from cortex.hub.local import LocalStore
from cortex.protocol.commitment import ModelCommitment
from cortex.protocol.competition import CORTEX_70B, CORTEX_TINY
from miner import run as R
from miner.config import MinerConfig, TrainConfig
from miner.data import resolve_source, spread

REV = "cd" * 32


def test_source_precedence(monkeypatch):
    monkeypatch.delenv("CORTEX_MARKET_DATA", raising=False)
    assert resolve_source(TrainConfig()) == "synthetic"
    monkeypatch.setenv("CORTEX_MARKET_DATA", "/data/market")
    assert resolve_source(TrainConfig()) == "csv:/data/market"
    assert resolve_source(TrainConfig(source="binance")) == "binance"
    assert resolve_source(TrainConfig(source="binance"), "synthetic:3") == "synthetic:3"


def test_spread_keeps_the_whole_window():
    import datasets

    ds = datasets.Dataset.from_dict({"i": list(range(100))})
    assert spread(ds, 4)["i"] == [0, 25, 50, 75] and len(spread(ds, None)) == 100 and len(spread(ds, 500)) == 100


def test_offline_needs_a_local_base(tmp_path):
    opts = MinerConfig(netuid=NETUID, competition=CORTEX_TINY, output_dir=tmp_path, no_chain=True)
    with pytest.raises(CortexError, match="--offline needs a local base"):
        R.sync_base(opts, TrainConfig())
    with pytest.raises(CortexError, match="does not exist: build one with `cortex base bootstrap"):
        R.sync_base(opts, TrainConfig(model_name_or_path=str(tmp_path / "nope")))


def test_base_pointer_then_store_fallback(tmp_path, monkeypatch):
    c = make_chain(tmp_path, tempo=50)
    owner, miner = c.register("owner"), c.register("miner")
    store = LocalStore(tmp_path / "store")
    seen = []
    monkeypatch.setattr("cortex.model.loading.fetch_base", lambda repo, rev, st, **kw: seen.append((repo, rev)) or tmp_path)
    opts = MinerConfig(netuid=NETUID, competition=CORTEX_TINY, output_dir=tmp_path)
    with pytest.raises(CortexError, match="has no base yet: no base pointer on chain"):
        R.sync_base(opts, TrainConfig(), c.sub, store)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.json").write_text("{}")
    genesis = store.upload("cortex/tiny-llama", tmp_path / "b", private=False)
    assert R.sync_base(opts, TrainConfig(), c.sub, store).revision == genesis  # the bootstrap's, from the store
    # a base pointer by someone other than the owner is ignored; the owner's is followed
    publish(c.sub, miner, NETUID, ModelCommitment.for_content("cortex-tiny", "x/fake", REV, REV,
                                                              miner.hotkey.ss58_address, kind="base"))
    assert R.sync_base(opts, TrainConfig(), c.sub, store).revision == genesis
    from cortex.model.pointer import model_hash

    # the owner's pointer binds the files' model hash, which the miner checks (BaseRef.fetch) as validators do
    publish(c.sub, owner, NETUID, ModelCommitment.for_content("cortex-tiny", "cortex/merged", REV, model_hash(tmp_path),
                                                              owner.hotkey.ss58_address, kind="base"))
    base = R.sync_base(opts, TrainConfig(), c.sub, store)
    assert (base.repo, base.revision) == ("cortex/merged", REV) and seen[-1] == ("cortex/merged", REV)
    # a pinned competition never follows pointers
    pinned = R.sync_base(MinerConfig(netuid=NETUID, competition=CORTEX_70B, output_dir=tmp_path), TrainConfig(), c.sub, store)
    assert (pinned.repo, pinned.revision) == (CORTEX_70B.base.repo, CORTEX_70B.base.revision)


def test_loop_keeps_going_after_a_failed_round(tmp_path, monkeypatch):
    calls = []

    def fake_round(opts, cfg, refresh_data=False):
        calls.append(refresh_data)
        (opts.output_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        if len(calls) == 2:
            raise CortexError("no base yet")
        return {"round": len(calls)}

    monkeypatch.setattr(R, "run_round", fake_round)
    monkeypatch.setattr(R.time, "sleep", lambda s: None)
    opts = MinerConfig(netuid=NETUID, competition=CORTEX_TINY, output_dir=Path(tmp_path), loop=True, loop_rounds=3)
    assert R.run(opts, TrainConfig()) == {"round": 3} and calls == [True, True, True]
