"""A merge in the middle of the scoring window (issue 21): each question day is judged against the base
that was current on it, read from the chain's base-pointer history, so a validator started after the
merge sets exactly the weights of one that ran through it; and an adapter trained on the old base is
refused as ``stale_base`` once the new base is current.

The world is ``validator_fixtures.make_world`` (one market day per block, honest adapters committed
at blocks 0-3), with rounds every 5 blocks and one more miner, ``stale``, whose adapter names the
genesis base's revision. Validator A runs the round of sync block 25 (days 03-19..03-26, all on the
genesis base). Then the subnet owner points the base at a merge (the genesis base with ``strong``
folded in: it answers differently) at block 28, so days 03-24..03-29 are the genesis base's and
03-30..03-31 the merge's (03-30 resolved, scored against the merge). At block 30 A runs again, and validator B,
with an empty state and ledger, runs for the first time: the window, days 03-24..03-31, spans the
merge.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from dataclasses import replace
from datetime import date, timedelta

import pytest
from chainkit import NETUID
from validator_fixtures import (
    BLOCKS_PER_DAY,
    COMP,
    SCHEDULE,
    START_DAY,
    TINY_REPO,
    _commit,
    build_artifacts,
    make_world,
    torch_threads,
)

from cortex.eval.engines import EngineOptions, TransformersEngine
from cortex.model.pointer import model_hash
from cortex.protocol.commitment import ModelCommitment
from cortex.protocol.hashing import content_hash
from cortex.wandb_log import WandbConfig
from validator.config import ValidatorConfig
from validator.ledger import Ledger
from validator.round import Parts, Validator

pytestmark = pytest.mark.slow


def make_validator(world, name: str, root) -> Validator:
    cfg = ValidatorConfig(
        netuid=NETUID, wallet_name=name, wallet_path=str(world.chain.wallet_path), chain_path=str(world.chain.path),
        store=f"local:{world.store.root}", state=root / name / "state.json", competitions=(str(world.competitions_file),),
        start_day=date.fromisoformat(START_DAY), blocks_per_day=BLOCKS_PER_DAY, wandb=WandbConfig(enabled=False),
        once=True, round_blocks=5)

    def engine(base_dir, comp):
        return TransformersEngine(base_dir, options=EngineOptions(device="cpu"), max_new_tokens=comp.eval.max_new_tokens,
                                  batch_size=comp.eval.batch_size)

    return Validator(Parts(cfg, world.chain.sub, world.chain.wallets[name], world.store, SCHEDULE, make_engine=engine,
                           wait_blocks=world.chain.advance))


def merged_base(base, adapter, out):
    """The base with a LoRA folded into its weights (peft's merge): a new base revision that answers differently."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    shutil.copytree(base, out)
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).merge_and_unload().save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    art = build_artifacts(tmp_path_factory.getbasetemp() / "validator-artifacts")
    root = tmp_path_factory.mktemp("merge")
    world = make_world(root, art, bad=False)
    c, store = world.chain, world.store
    genesis = store.revisions(TINY_REPO)[0]

    stale = root / "stale-adapter"  # weak's files, its config naming the genesis base revision (as miners write it)
    shutil.copytree(art.honest["weak"], stale)
    config = json.loads((stale / "adapter_config.json").read_text())
    (stale / "adapter_config.json").write_text(json.dumps({**config, "revision": genesis}))
    wallet = c.register("stale")
    stale_rev = store.upload("stale/cortex-lora", stale, private=False)
    _commit(c, "stale", ModelCommitment.for_content(COMP, "stale/cortex-lora", stale_rev, content_hash(stale),
                                                    wallet.hotkey.ss58_address).encode())
    c.advance(25 - c.sub.block)

    a = make_validator(world, "validator0", root)
    with torch_threads(1):
        first = a.run_round()  # before the merge

        c.advance(28 - c.sub.block)
        folder = merged_base(art.base, art.honest["strong"], root / "merged")
        merged = store.upload(TINY_REPO, folder, private=False)
        pointer = ModelCommitment.for_content(COMP, TINY_REPO, merged, model_hash(folder),
                                              world.hotkey("owner"), kind="base")
        merge_block = _commit(c, "owner", pointer.encode())
        c.advance(30 - c.sub.block)

        second = a.run_round()  # A again, after the merge
        b = make_validator(world, "validator1", root)  # B starts now: empty state, empty ledger
        fresh = b.run_round()
    ledgers = {}
    for name in ("validator0", "validator1"):
        with Ledger(root / name / "ledger.sqlite") as ledger:
            ledgers[name] = ledger.entries(COMP, "2024-01-01", "2024-12-31")
    return dict(world=world, genesis=genesis, merged=merged, merge_block=merge_block, first=first, second=second,
                fresh=fresh, ledgers=ledgers)


def test_two_validators_started_before_and_after_a_merge_set_the_same_weights(run):
    first, second, fresh = run["first"], run["second"], run["fresh"]
    assert first.sync_block == 25 and second.sync_block == fresh.sync_block == 30
    assert run["merge_block"] == 28  # inside the window of the second round
    assert first.competitions[COMP].base == f"{TINY_REPO}@{run['genesis']}"
    assert second.competitions[COMP].base == fresh.competitions[COMP].base == f"{TINY_REPO}@{run['merged']}"

    assert fresh.weights == second.weights
    assert fresh.competitions[COMP].scores == second.competitions[COMP].scores
    world = run["world"]
    earners = {int(uid) for uid, w in fresh.weights.items() if w > 0}
    assert earners and world.uid("owner") not in earners, [(m.uid, m.reason, m.ci_low) for m in
                                                           fresh.competitions[COMP].scores.models]  # not all burnt
    assert earners <= {world.uid(n) for n in ("strong", "medium", "weak")}
    rows = world.chain.sub.weights.weights(NETUID)
    assert rows[world.uid("validator0")] == rows[world.uid("validator1")]


def test_each_day_is_answered_by_the_base_current_on_it(run):
    genesis, merged = f"{TINY_REPO}@{run['genesis']}", f"{TINY_REPO}@{run['merged']}"
    start = date.fromisoformat(START_DAY)
    switch = start + timedelta(days=run["merge_block"] + 1)  # the first day whose answerers were fixed after it
    window = [date(2024, 3, 24) + timedelta(days=k) for k in range(8)]
    expected = {d.isoformat(): genesis if d < switch else merged for d in window}
    assert set(expected.values()) == {genesis, merged}  # the window spans the merge
    for name, entries in run["ledgers"].items():
        by_day = defaultdict(set)
        for e in entries:
            if e.model in (genesis, merged) and e.cutoff in expected:
                by_day[e.cutoff].add(e.model)
        assert by_day == {d: {m} for d, m in expected.items()}, name  # one base per day, the chain's
    fresh = {(e.model, e.question): e for e in run["ledgers"]["validator1"]}
    ran = {(e.model, e.question): e for e in run["ledgers"]["validator0"]}
    shared = sorted(set(fresh) & set(ran))
    assert shared and all(fresh[k].completion == ran[k].completion for k in shared)  # the same answers, whenever made

    # the base matters: the merge answers the pre-merge days' market differently from the genesis base
    rewards = defaultdict(list)
    for e in run["ledgers"]["validator1"]:
        if e.model in (genesis, merged) and e.reward is not None:
            rewards[e.model].append(e.reward)
    assert rewards[genesis] and rewards[merged] and max(rewards[merged]) > max(rewards[genesis])


def test_an_adapter_of_the_old_base_is_refused_as_stale(run):
    world = run["world"]
    for table in (run["second"], run["fresh"]):
        refused = {r.uid: r for r in table.competitions[COMP].refused}
        stale = refused[world.uid("stale")]
        assert stale.reason == "stale_base" and run["genesis"][:12] in stale.detail
        assert str(world.uid("stale")) not in table.weights
        assert all(r.reason == "stale_base" for r in refused.values())  # nothing else was refused
    # before the merge the same adapter named the current base: not refused (it was not yet eligible)
    assert world.uid("stale") not in {r.uid for r in run["first"].competitions[COMP].refused}
    ignored = {i.uid: i.reason for i in run["first"].competitions[COMP].ignored}
    assert ignored[world.uid("stale")] == "not_eligible"
