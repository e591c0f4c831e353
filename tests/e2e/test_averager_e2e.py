"""The averager end to end on the embedded chain (issue 6, "what it must show").

The real path each round: a validator round (the outcome ledger, the paired advantage over the
base, a ``ScoreTable``) → weights on chain → the epoch's Yuma incentive → the averager. What wins
is controlled by the test, not by chance: ``medium`` earns more than ``weak`` (the fixtures' depth
credits, tests/support/validator_fixtures.py), so round 1 merges ``medium`` alone with ``max_inputs=1``
(``weak`` is ``not_top``: a blend of two of these tiny one-text adapters garbles both).

- Round 1: the averager merges ``medium``, the gate passes, the base is published and the pointer
  committed. ``copy`` (``medium``'s files from another hotkey, committed later) is paid nothing by
  the validator (``copy_of_earlier``), so it reaches the averager with no incentive. (The
  averager's own duplicate rule, for two inputs that both have incentive, is tested in
  tests/averager/test_averager_select.py and end to end, with weights set on chain directly, in
  tests/averager/test_averager_kill.py; the validator's copy rule in tests/e2e/test_validator_e2e.py and
  tests/validator/test_scoring.py.)
- Round 2, before the validators score again (their weights lag the base): ``medium`` still has
  incentive but the new base's manifest holds it (``already_merged``); ``weak`` was trained on
  the genesis base (``stale_base``); nothing is merged and nothing changes.
- The validator and a miner resolve the new base; a miner publishes ``upgrader``, an adapter of it
  (``averager_fixtures.upgrade``); the validator scores it on the new base. Round 3, with a
  rank-1 merge, is worse than the base: rejected, the pointer and the store unchanged. From here on
  ``max_inputs=2``: ``medium`` and ``weak``, adapters of the genesis base, answer badly on the new
  one and are not paid (``no_incentive``), and where a validator still paid them the averager would
  drop them itself (``already_merged``, ``stale_base``), so ``upgrader`` is merged alone.
- Round 4 (exact) passes and publishes again. ``cortex base rollback`` re-points to round 1's
  base and to genesis; a revision the repo does not have exits 2.

Each stage is a module fixture built on the one before (``round1`` → ``round2`` → ``round3`` →
``round4``) that keeps what the chain and the store showed at that moment, so every test reads
its fixture, never what another test left behind, and passes alone or in any order.
"""

import json
from datetime import date
from types import SimpleNamespace

import pytest
from averager_fixtures import (
    BLOCKS_PER_DAY,
    COMP,
    COMPETITION16,
    SCHEDULE16,
    START_DAY,
    make_world,
    publish,
    stage,
    upgrade,
)
from chainkit import NETUID
from validator_fixtures import TINY_REPO, build_artifacts, torch_threads

from averager.config import AveragerConfig
from averager.select import SelectConfig
from averager.service import Averager, Parts
from cortex.cli import main as cortex_main
from cortex.model.pointer import current_base
from cortex.wandb_log import WandbConfig
from validator.config import ValidatorConfig
from validator.round import Parts as ValidatorParts
from validator.round import Validator

pytestmark = pytest.mark.slow
NO_WANDB = WandbConfig(enabled=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    art = build_artifacts(tmp_path_factory.getbasetemp() / "validator-artifacts")
    root = tmp_path_factory.mktemp("averager-e2e")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CORTEX_CACHE", str(root / "cache"))
        chain, store, genesis = make_world(root, art)
        cfg = ValidatorConfig(
            netuid=NETUID, wallet_name="validator0", wallet_path=str(chain.wallet_path), chain_path=str(chain.path),
            store=f"local:{store.root}", state=root / "v0" / "state.json", competitions=(str(root / "competitions.yaml"),),
            start_day=date.fromisoformat(START_DAY), blocks_per_day=BLOCKS_PER_DAY, wandb=NO_WANDB, once=True)
        validator = Validator(ValidatorParts(cfg, chain.sub, chain.wallets["validator0"], store, SCHEDULE16,
                                             wait_blocks=chain.advance))
        yield SimpleNamespace(art=art, root=root, chain=chain, store=store, genesis=genesis, validator=validator,
                              vcfg=cfg)


def averager(w, max_inputs: int = 1, **kw) -> Averager:
    cfg = AveragerConfig(netuid=NETUID, competition=COMPETITION16, wallet_name="owner",
                         wallet_path=str(w.chain.wallet_path), chain_path=str(w.chain.path),
                         store=f"local:{w.store.root}", state=w.root / "averager",
                         scores=(w.vcfg.state_dir / "scores" / "latest.json",),
                         start_day=date.fromisoformat(START_DAY), blocks_per_day=BLOCKS_PER_DAY,
                         select=SelectConfig(max_inputs=max_inputs, max_weight=1.0), progress=False, wandb=NO_WANDB,
                         **kw)
    return Averager(Parts(cfg, w.chain.sub, w.chain.wallets["owner"], w.store))


def to_block(w, block: int) -> None:
    w.chain.advance(block - w.chain.sub.block)


def hotkey(w, name: str) -> str:
    return w.chain.wallets[name].hotkey.ss58_address


def averager_round(w, **kw) -> SimpleNamespace:
    """One averager round, with what the chain and the store showed right after it."""
    with torch_threads(1):
        record = averager(w, **kw).run_round().to_json()  # the record as written
    rounds = w.root / "averager" / "rounds"
    return SimpleNamespace(
        record=record, inputs={i["hotkey"]: i for i in record["inputs"]},
        base=current_base(w.chain.sub, NETUID, COMPETITION16, w.store), history=w.store.revisions(TINY_REPO),
        latest=json.loads((rounds / "latest.json").read_text()),
        written=json.loads((rounds / f"round-{record['round']:06d}.json").read_text()),
        work_left=(w.root / "averager" / "work").exists())


@pytest.fixture(scope="module")
def round1(world):
    w = world
    to_block(w, 25)
    with torch_threads(1):
        table = w.validator.run_round()
    to_block(w, 31)  # the epoch at block 30 turns the weights into incentive
    return SimpleNamespace(table=table, **vars(averager_round(w)))


@pytest.fixture(scope="module")
def round2(world, round1):
    return averager_round(world)  # at once: the validators have not scored on the new base yet


@pytest.fixture(scope="module")
def round3(world, round1, round2):
    from miner.config import MinerConfig
    from miner.run import sync_base

    w = world
    base1 = sync_base(MinerConfig(netuid=NETUID, competition=COMPETITION16, output_dir=w.root / "miner"),
                      SimpleNamespace(model_name_or_path=None), w.chain.sub, w.store)
    adapter = upgrade(w.art.honest["strong"], w.art.honest["medium"], w.root / "upgrade")
    publish(w.chain, w.store, "upgrader", stage(adapter, w.root / "uploads" / "upgrader", base1.revision))
    to_block(w, 41)
    with torch_threads(1):
        table = w.validator.run_round()
    to_block(w, 51)
    done = averager_round(w, max_inputs=2, method="rank-r", rank=1)
    return SimpleNamespace(base1=base1, table=table, **vars(done))


@pytest.fixture(scope="module")
def round4(world, round3):
    return averager_round(world, max_inputs=2)


def test_round_1_merges_the_winner_passes_the_gate_publishes_and_commits(world, round1):
    w, record, inputs = world, round1.record, round1.inputs
    assert round1.table.weights_set
    paid = {m.hotkey: m for m in round1.table.competitions[COMP].scores.models}
    assert paid[hotkey(w, "medium")].weight > paid[hotkey(w, "weak")].weight > 0  # both earn; medium more
    assert record["round"] == 1 and record["status"] == "published", record
    assert inputs[hotkey(w, "medium")]["decision"] == "kept" and inputs[hotkey(w, "medium")]["weight"] == 1.0
    assert inputs[hotkey(w, "medium")]["score"] == paid[hotkey(w, "medium")].advantage  # the tables' advantage
    assert inputs[hotkey(w, "weak")]["reason"] == "not_top"  # max_inputs=1: the most incentive wins
    assert paid[hotkey(w, "copy")].reason == "copy_of_earlier"  # the validator pays the copy nothing …
    assert inputs[hotkey(w, "copy")]["reason"] == "no_incentive"  # … so the averager never considers it
    gate = record["gate"]
    assert gate["passed"] and gate["merged_reward"] > gate["base_reward"]
    assert gate["merged_reward"] >= gate["best_single_reward"]
    # the format rule counted the gate's prompts and its own (averager.gate.check_format)
    assert gate["format_prompts"] > gate["prompts"] and gate["base_format_failures"] is not None
    assert gate["merged_format_failures"] - gate["base_format_failures"] <= 0.02 * gate["format_prompts"]
    assert record["parent"] == f"{TINY_REPO}@{w.genesis}"
    repo, revision = record["published"].split("@")
    assert (round1.base.repo, round1.base.revision, round1.base.block) == (repo, revision, record["pointer_block"])
    files = {f.path for f in w.store.list_files(repo, revision)}
    assert {"manifest.json", "README.md", "config.json", "model.safetensors", "tokenizer.json"} <= files
    manifest = json.loads((w.store.root / repo / "revisions" / revision / "manifest.json").read_text())
    assert manifest["parent"] == record["parent"] and manifest["method"] == "exact"
    assert [i["model"] for i in manifest["inputs"]] == [f"medium/cortex-lora@{inputs[hotkey(w, 'medium')]['revision']}"]
    assert manifest["inputs"][0]["weight"] == 1.0 and manifest["gate"]["passed"]
    assert round1.latest == round1.written == record
    assert not round1.work_left


def test_round_2_skips_what_the_base_already_holds_and_what_was_trained_on_another_base(world, round1, round2):
    w, record, inputs = world, round2.record, round2.inputs
    assert record["round"] == 2 and record["parent"] == round1.record["published"]
    assert inputs[hotkey(w, "medium")]["incentive"] > 0  # still paid: the validators have not scored again
    assert inputs[hotkey(w, "medium")]["reason"] == "already_merged"
    assert inputs[hotkey(w, "weak")]["reason"] == "stale_base"  # trained on the genesis base
    assert (record["status"], record["published"], record["gate"]) == ("skipped", None, None)
    assert str(round2.base) == round1.record["published"] and round2.history == round1.history  # nothing changed
    assert round2.latest == round2.written == record and not round2.work_left


def test_validators_and_miners_pick_up_the_new_base_and_a_worse_merge_is_rejected(world, round1, round3):
    w, record, inputs, table = world, round3.record, round3.inputs, round3.table
    published = round1.record["published"]
    assert f"{round3.base1.repo}@{round3.base1.revision}" == published  # the miner trains on the new base
    assert published.startswith(table.competitions[COMP].base.split("@")[0])
    assert table.competitions[COMP].base == published  # the validator too (one BaseRef)
    scored = {m.hotkey: m for m in table.competitions[COMP].scores.models}
    assert hotkey(w, "upgrader") in scored  # checked on the new base and scored, not refused
    assert hotkey(w, "upgrader") not in {r.hotkey for r in table.competitions[COMP].refused}
    assert scored[hotkey(w, "upgrader")].earned  # strictly better than the new base
    assert record["round"] == 3 and record["parent"] == published
    assert inputs[hotkey(w, "upgrader")]["decision"] == "kept"
    assert record["status"] == "rejected", record
    assert record["gate"]["merged_reward"] < record["gate"]["base_reward"] and not record["gate"]["passed"]
    assert record["energy_kept"] and all(0 < e < 1 for e in record["energy_kept"].values())
    # medium on a base that already holds it, and weak on a base it was not trained on: the validators no
    # longer pay them (no incentive) or, where they still do, the averager refuses them itself
    assert inputs[hotkey(w, "medium")]["reason"] in ("no_incentive", "already_merged")  # not merged twice
    assert inputs[hotkey(w, "weak")]["reason"] in ("no_incentive", "stale_base")
    assert record["published"] is None
    assert str(round3.base) == published  # unchanged
    assert round3.history == round1.history and len(round3.history) == 2  # genesis and round 1: nothing new


def test_round_4_publishes_again_and_rollback_repoints_to_an_earlier_revision(world, round1, round4, capsys):
    w, record = world, round4.record
    assert record["round"] == 4 and record["status"] == "published", record
    assert record["parent"] == round1.record["published"]
    assert round4.inputs[hotkey(w, "upgrader")]["weight"] == 1.0
    gate = record["gate"]
    assert gate["merged_reward"] > gate["base_reward"]  # strictly better than round 1's base
    assert str(round4.base) == record["published"]
    history = round4.history
    assert len(history) == 3 and history[0] == record["published"].split("@")[1]
    round1_revision = round1.record["published"].split("@")[1]
    w.chain.advance(1)
    args = ["base", "rollback", "--to", round1_revision, "--netuid", str(NETUID), "--wallet.name", "owner",
            "--wallet.path", str(w.chain.wallet_path), "--chain.path", str(w.chain.path),
            "--competition", str(w.root / "competitions.yaml"), "--store", f"local:{w.store.root}"]
    assert cortex_main(args) == 0
    base = current_base(w.chain.sub, NETUID, COMPETITION16, w.store)
    assert base.revision == round1_revision and w.store.revisions(TINY_REPO) == history  # nothing squashed or added
    assert cortex_main([*args[:3], "0" * 64, *args[4:]]) == 2  # not a revision of the repo: refused
    assert current_base(w.chain.sub, NETUID, COMPETITION16, w.store).revision == round1_revision
    w.chain.advance(1)
    assert cortex_main([*args[:3], w.genesis, *args[4:]]) == 0  # back to the genesis base
    assert current_base(w.chain.sub, NETUID, COMPETITION16, w.store).revision == w.genesis
    capsys.readouterr()
    assert cortex_main(["base", "history", *args[4:]]) == 0
    listed = capsys.readouterr().out.splitlines()  # every revision, newest first, the current one marked
    assert [line.split("@")[1].split()[0] for line in listed] == history
    assert [line for line in listed if "current base" in line] == [f"{TINY_REPO}@{w.genesis}  <- current base"]
