"""The validator end to end on the embedded chain and a local store (DESIGN.md §9, "what it must show").

Three honest adapters of known quality (see tests/support/validator_fixtures.py for how they differ), an
exact copy of the best committed later by another hotkey, and twenty kinds of bad adapters or
commitments. Each model answers each live question of the window once (the outcome ledger); the
honest ones earn, ranked by their advantage over the base, the copy earns nothing, every bad one
gets zero with its recorded reason, weights land on chain, and a later round scores the late
commitment without downloading anything else again.

Each test reads the module fixtures, never what another test left behind: ``first`` is one
validator's first round, ``second`` the same validator's next round (on a world of its own).
"""

from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from chainkit import NETUID
from validator_fixtures import (
    BLOCKS_PER_DAY,
    COMP,
    SCHEDULE,
    START_DAY,
    TINY_REPO,
    CountingStore,
    build_artifacts,
    make_world,
    torch_threads,
)

from cortex.protocol.scores import ScoreTable
from cortex.wandb_log import WandbConfig
from validator.config import ValidatorConfig
from validator.ledger import Ledger
from validator.round import Parts, Validator
from validator.state import load

pytestmark = pytest.mark.slow
HONEST = ("strong", "medium", "weak")


def config(world, name: str, state: Path) -> ValidatorConfig:
    return ValidatorConfig(
        netuid=NETUID, wallet_name=name, wallet_path=str(world.chain.wallet_path), chain_path=str(world.chain.path),
        store=f"local:{world.store.root}", state=state, competitions=(str(world.competitions_file),),
        start_day=date.fromisoformat(START_DAY), blocks_per_day=BLOCKS_PER_DAY, wandb=WandbConfig(enabled=False), once=True)


def start(tmp_path_factory, name: str):
    art = build_artifacts(tmp_path_factory.getbasetemp() / "validator-artifacts")
    root = tmp_path_factory.mktemp(name)
    world = make_world(root, art)
    store = CountingStore(world.store, vanish={world.miners["vanishing"].repo})
    cfg = config(world, "validator0", root / "v0" / "state.json")
    validator = Validator(Parts(cfg, world.chain.sub, world.chain.wallets["validator0"], store, SCHEDULE,
                                wait_blocks=world.chain.advance))
    with torch_threads(1):
        table = validator.run_round()
    return world, store, validator, cfg, table


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    return start(tmp_path_factory, "e2e-first")


@pytest.fixture(scope="module")
def second(tmp_path_factory):
    world, store, validator, cfg, table = start(tmp_path_factory, "e2e-second")
    world.chain.advance(10)
    before = len(store.downloads)
    with torch_threads(1):
        again = validator.run_round()
        done = validator.run_round()  # the same tempo again: nothing to redo
    return world, store, cfg, table, again, done, store.downloads[before:]


def skills(table: ScoreTable) -> dict:
    return {m.hotkey: m for m in table.competitions[COMP].scores.models}


def test_honest_adapters_earn_by_their_advantage_and_the_copy_earns_nothing(first):
    world, _, _, _, table = first
    by = {name: skills(table)[world.hotkey(name)] for name in (*HONEST, "copy")}
    assert all(by[n].earned and by[n].reason == "earned" for n in HONEST)
    assert by["strong"].advantage > by["medium"].advantage > by["weak"].advantage > 0
    assert all(by[n].ci_low > 0 and by[n].days == 7 and by[n].questions == 7 for n in HONEST)  # 03-14..03-20
    assert by["strong"].weight > by["medium"].weight > by["weak"].weight > 0
    assert by["copy"].advantage == by["strong"].advantage  # the same answers …
    assert (by["copy"].reason, by["copy"].weight) == ("copy_of_earlier", 0.0)  # … committed later: nothing
    comp = table.competitions[COMP]
    assert comp.base.startswith(TINY_REPO + "@") and comp.scores.unearned == 0.0
    assert comp.metrics[comp.base].mean_reward == -1.0  # the base answers nothing parseable: the reference
    assert (comp.window, comp.days, comp.questions) == (["2024-03-14", "2024-03-21"], 8, 8)
    assert set(table.weights) == {str(world.uid(n)) for n in HONEST}


def test_every_bad_adapter_gets_zero_with_its_reason(first):
    world, _, _, cfg, table = first
    comp = table.competitions[COMP]
    refused = {r.hotkey: r for r in comp.refused}
    ignored = {i.hotkey: i for i in comp.ignored}
    bad = {n: m for n, m in world.miners.items() if m.expect is not None}
    assert len(bad) >= 20
    scored = skills(table)
    for name, miner in bad.items():
        hotkey = world.hotkey(name)
        found = refused.get(hotkey) or ignored.get(hotkey)
        assert found is not None and found.reason == miner.expect and found.detail, name
        assert hotkey not in scored and str(world.uid(name)) not in table.weights, name
    assert len({m.expect for m in bad.values()}) >= 17  # distinct reason codes
    state = load(cfg.state)  # a refused revision stays refused: its verdict is kept
    assert state.refused[f"{world.miners['nan'].repo}@{world.miners['nan'].revision}"]["reason"] == "non_finite"


def test_weights_are_on_chain_and_nothing_bad_was_loaded(first):
    world, store, _, cfg, table = first
    assert table.weights_set
    row = world.chain.sub.weights.weights(NETUID)[world.uid("validator0")]
    honest = [world.uid(n) for n in HONEST]
    assert sorted(row) == sorted(honest)
    assert [row[u] for u in honest] == sorted((row[u] for u in honest), reverse=True)
    vanished = world.miners["vanishing"]
    assert not (cfg.cache_dir / "adapters" / vanished.repo.replace("/", "--") / vanished.revision).exists()
    refused_early = {world.miners[n].repo for n in ("pickle", "extra_files", "huge_file")}
    assert not refused_early & {repo for repo, _ in store.downloads}  # refused from the listing alone
    latest = ScoreTable.read(cfg.state_dir / "scores" / "latest.json")
    assert latest == ScoreTable.read(cfg.state_dir / "scores" / "round-000001.json") and latest.round == 1
    assert latest.competitions[COMP].scores == table.competitions[COMP].scores


def test_each_model_answers_each_question_once(first):
    world, _, _, cfg, table = first
    comp = table.competitions[COMP]
    with Ledger(cfg.ledger) as ledger:
        entries = ledger.entries(COMP, "2024-03-14", "2024-03-21")
    pairs = Counter((e.model, e.question) for e in entries)
    assert set(pairs.values()) == {1}
    keys = {f"{world.miners[n].repo}@{world.miners[n].revision}" for n in (*HONEST, "copy")} | {comp.base}
    assert {e.model for e in entries} == keys
    assert all(comp.generated[k] == 8 for k in keys)  # eight days, one question each
    assert sum(e.reward is not None for e in entries) == 7 * len(keys)  # 03-21's outcome is not known yet


def test_a_second_round_scores_the_late_commitment_without_downloading_again(second):
    world, store, cfg, first, table, done, downloads = second
    assert table.round == 2 and table.sync_block == first.sync_block + 10 and table.weights_set
    late, weak = skills(table)[world.hotkey("late")], skills(table)[world.hotkey("weak")]
    assert late.days == 7 and late.advantage == weak.advantage > 0  # scored now: committed before these days
    assert (late.earned, late.weight, late.reason) == (False, 0.0, "not_above_earlier")  # weak's files, later
    assert world.hotkey("late") in {i.hotkey for i in first.competitions[COMP].ignored}
    assert downloads == [(world.miners["late"].repo, world.miners["late"].revision)]
    state = load(cfg.state)
    assert state.round == 2 and state.last_weights_block >= table.sync_block
    with Ledger(cfg.ledger) as ledger:  # pruned to the new window
        assert not ledger.entries(COMP, "2024-01-01", "2024-03-23")
        assert len(ledger.entries(COMP, "2024-03-24", "2024-03-31")) == 8 * 6  # base, 3 honest, copy, late
    assert done.done and done.weights == table.weights
