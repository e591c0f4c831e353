"""The validator end to end on the embedded chain and a local store (issue 5, "what it must show").

Three honest adapters of known quality (see tests/validator_fixtures.py for how they differ), an
exact copy of the best committed later by another hotkey, and twenty kinds of bad adapters or
commitments. The honest ones are ranked by quality, the copy gets less than the original, every
bad one gets zero with its recorded reason, weights land on chain, and a second round works.
"""

import json
from datetime import date
from pathlib import Path

import pytest
from chainkit import NETUID
from validator_fixtures import (
    BLOCKS_PER_DAY,
    COMP,
    SCHEDULE,
    START_DAY,
    CountingStore,
    build_artifacts,
    make_world,
    torch_threads,
)

from validator.config import ValidatorConfig
from validator.round import Parts, Validator
from validator.state import load

pytestmark = pytest.mark.slow


def config(world, name: str, state: Path) -> ValidatorConfig:
    return ValidatorConfig(
        netuid=NETUID, wallet_name=name, wallet_path=str(world.chain.wallet_path), chain_path=str(world.chain.path),
        store=f"local:{world.store.root}", state=state, competitions=(str(world.competitions_file),),
        start_day=date.fromisoformat(START_DAY), blocks_per_day=BLOCKS_PER_DAY, wandb=False, once=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    art = build_artifacts(tmp_path_factory.getbasetemp() / "validator-artifacts")
    root = tmp_path_factory.mktemp("e2e")
    world = make_world(root, art)
    store = CountingStore(world.store, vanish={world.miners["vanishing"].repo})
    cfg = config(world, "validator0", root / "v0" / "state.json")
    validator = Validator(Parts(cfg, world.chain.sub, world.chain.wallets["validator0"], store, SCHEDULE,
                                wait_blocks=world.chain.advance))
    with torch_threads(1):
        table = validator.run_round()
    return world, store, validator, cfg, table


def rows(table) -> dict[str, dict]:
    return {m["hotkey"]: m for m in table["competitions"][COMP]["models"]}


def test_honest_adapters_are_ranked_by_quality_and_the_copy_loses_to_the_original(run):
    world, _, _, _, table = run
    by = {name: rows(table)[world.hotkey(name)] for name in ("strong", "medium", "weak", "copy")}
    assert all(m["reason"] is None for m in by.values())
    rewards = {n: m["mean_reward"] for n, m in by.items()}
    assert rewards["strong"] == rewards["copy"] > rewards["medium"] > rewards["weak"] > -1.0
    assert by["strong"]["metrics"]["depth"] > by["medium"]["metrics"]["depth"] > by["weak"]["metrics"]["depth"]
    assert by["strong"]["win_rate"] == 1.0  # beats the copy on every prompt through the earlier-commit epsilon
    assert by["strong"]["weight"] > by["copy"]["weight"] > by["medium"]["weight"] > by["weak"]["weight"] > 0
    base = table["competitions"][COMP]["base_model"]
    assert base["mean_reward"] == -1.0 and base["win_rate"] == 0.0  # the base is the reference, never weighted
    assert set(table["weights"]) == {str(world.uid(n)) for n in ("strong", "medium", "weak", "copy")}


def test_every_bad_adapter_gets_zero_with_its_reason(run):
    world, _, _, cfg, table = run
    models = rows(table)
    ignored = {i["hotkey"]: i for i in table["competitions"][COMP]["ignored"]}
    bad = {n: m for n, m in world.miners.items() if m.expect is not None}
    assert len(bad) >= 20
    state = load(cfg.state)
    for name, miner in bad.items():
        hotkey = world.hotkey(name)
        if hotkey in ignored:
            assert ignored[hotkey]["reason"] == miner.expect, name
            continue
        row = models[hotkey]
        assert (row["reason"], row["weight"], row["win_rate"]) == (miner.expect, 0.0, 0.0), name
        assert row["detail"], name
        assert state.models[hotkey][-1].reason == miner.expect, name
    assert len({m.expect for m in bad.values()}) >= 17  # distinct reason codes


def test_weights_are_on_chain_and_nothing_bad_was_loaded(run):
    world, store, _, cfg, table = run
    assert table["weights_set"]
    row = world.chain.sub.weights.weights(NETUID)[world.uid("validator0")]
    honest = [world.uid(n) for n in ("strong", "copy", "medium", "weak")]
    assert sorted(row) == sorted(honest)
    assert [row[u] for u in honest] == sorted((row[u] for u in honest), reverse=True)
    vanished = world.miners["vanishing"]
    assert not (cfg.cache_dir / "adapters" / vanished.repo.replace("/", "--") / vanished.revision).exists()
    refused_early = {world.miners[n].repo for n in ("pickle", "extra_files", "huge_file")}
    assert not refused_early & {repo for repo, _ in store.downloads}  # refused from the listing alone
    latest = json.loads((cfg.state_dir / "scores" / "latest.json").read_text())
    assert latest["round"] == 1 and latest["competitions"][COMP]["models"]


def test_a_second_round_scores_the_late_commitment_without_downloading_again(run):
    world, store, validator, cfg, first = run
    world.chain.advance(10)
    before = len(store.downloads)
    with torch_threads(1):
        table = validator.run_round()
    assert table["round"] == 2 and table["sync_block"] == first["sync_block"] + 10 and table["weights_set"]
    late = rows(table)[world.hotkey("late")]
    assert late["reason"] is None and late["weight"] > 0  # eligible now: committed before this window
    assert store.downloads[before:] == [(world.miners["late"].repo, world.miners["late"].revision)]
    state = load(cfg.state)
    assert state.round == 2 and state.last_weights_block >= table["sync_block"]
    strong = state.models[world.hotkey("strong")]
    assert [r.round for r in strong] == [1, 2] and strong[-1].weight > 0
    assert set(state.smoothed[COMP]) == {world.hotkey(n) for n in ("strong", "copy", "medium", "weak", "late")}
    with torch_threads(1):
        assert validator.run_round()["done"]  # the same tempo again: nothing to redo
