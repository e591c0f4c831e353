"""The averager end to end on the embedded chain (issue 6, "what it must show").

Round 1: miners publish on the genesis base, a validator scores them, the averager merges the
winner (its later copy dropped as a duplicate), the gate passes, the base is published and the
pointer committed. The validator and a miner then resolve the new base; a miner publishes an
adapter of it. Round 2, with a rank-1 merge, is worse than the base: rejected, nothing changes.
Round 3 (exact) passes and publishes again. ``cortex base rollback`` re-points to round 1's base.
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
                              vcfg=cfg, rounds=[])


def averager(w, **kw) -> Averager:
    cfg = AveragerConfig(netuid=NETUID, competition=COMPETITION16, wallet_name="owner",
                         wallet_path=str(w.chain.wallet_path), chain_path=str(w.chain.path),
                         store=f"local:{w.store.root}", state=w.root / "averager",
                         scores=(w.vcfg.state_dir / "scores" / "latest.json",),
                         start_day=date.fromisoformat(START_DAY), blocks_per_day=BLOCKS_PER_DAY,
                         select=SelectConfig(max_inputs=2, max_weight=1.0), progress=False, wandb=NO_WANDB, **kw)
    return Averager(Parts(cfg, w.chain.sub, w.chain.wallets["owner"], w.store))


def to_block(w, block: int) -> None:
    w.chain.advance(block - w.chain.sub.block)


def hotkey(w, name: str) -> str:
    return w.chain.wallets[name].hotkey.ss58_address


def test_round_1_merges_the_winner_passes_the_gate_publishes_and_commits(world):
    w = world
    to_block(w, 25)
    with torch_threads(1):
        table = w.validator.run_round()
    assert table.weights_set
    to_block(w, 31)  # the epoch at block 30 turns the weights into incentive
    with torch_threads(1):
        record = averager(w).run_round().to_json()  # the record as written
    w.rounds.append(record)
    assert record["status"] == "published", record
    inputs = {i["hotkey"]: i for i in record["inputs"]}
    assert inputs[hotkey(w, "medium")]["decision"] == "kept" and inputs[hotkey(w, "medium")]["weight"] == 1.0
    assert inputs[hotkey(w, "copy")]["reason"] == "duplicate"
    assert inputs[hotkey(w, "medium")]["score"] is not None  # the validators' mean advantage over the base
    gate = record["gate"]
    assert gate["passed"] and gate["merged_reward"] > gate["base_reward"]
    assert gate["merged_reward"] >= gate["best_single_reward"]
    assert record["parent"] == f"{TINY_REPO}@{w.genesis}"
    repo, revision = record["published"].split("@")
    base = current_base(w.chain.sub, NETUID, COMPETITION16, w.store)
    assert (base.repo, base.revision, base.block) == (repo, revision, record["pointer_block"])
    files = {f.path for f in w.store.list_files(repo, revision)}
    assert {"manifest.json", "README.md", "config.json", "model.safetensors", "tokenizer.json"} <= files
    manifest = json.loads((w.store.root / repo / "revisions" / revision / "manifest.json").read_text())
    assert manifest["parent"] == record["parent"] and manifest["method"] == "exact"
    assert [i["model"] for i in manifest["inputs"]] == [f"medium/cortex-lora@{inputs[hotkey(w, 'medium')]['revision']}"]
    assert manifest["inputs"][0]["weight"] == 1.0 and manifest["gate"]["passed"]
    latest = json.loads((w.root / "averager" / "rounds" / "latest.json").read_text())
    assert latest == json.loads((w.root / "averager" / "rounds" / "round-000001.json").read_text()) == record
    assert not (w.root / "averager" / "work").exists()


def test_validators_and_miners_pick_up_the_new_base_and_a_worse_merge_is_rejected(world):
    from miner.run import Options, sync_base

    w = world
    published = w.rounds[0]["published"]
    base1 = sync_base(Options(competition=COMPETITION16, output_dir=w.root / "miner", netuid=NETUID),
                      SimpleNamespace(model_name_or_path=None), w.chain.sub, w.store)
    assert f"{base1.repo}@{base1.revision}" == published  # the miner trains on the new base
    adapter = upgrade(w.art.honest["strong"], w.art.honest["medium"], w.root / "upgrade")
    publish(w.chain, w.store, "upgrader", stage(adapter, w.root / "uploads" / "upgrader", base1.revision))
    to_block(w, 41)
    with torch_threads(1):
        table = w.validator.run_round()
    assert published.startswith(table.competitions[COMP].base.split("@")[0])
    assert table.competitions[COMP].base == f"{base1.repo}@{base1.revision}"  # the validator too (one BaseRef)
    scored = {m.hotkey for m in table.competitions[COMP].scores.models}
    assert hotkey(w, "upgrader") in scored  # checked on the new base and scored, not refused
    assert hotkey(w, "upgrader") not in {r.hotkey for r in table.competitions[COMP].refused}
    to_block(w, 51)
    with torch_threads(1):
        record = averager(w, method="rank-r", rank=1).run_round().to_json()
    w.rounds.append(record)
    assert record["status"] == "rejected", record
    assert record["gate"]["merged_reward"] < record["gate"]["base_reward"] and not record["gate"]["passed"]
    assert record["energy_kept"] and all(0 < e < 1 for e in record["energy_kept"].values())
    inputs = {i["hotkey"]: i for i in record["inputs"]}
    assert inputs[hotkey(w, "medium")]["reason"] == "already_merged"
    assert inputs[hotkey(w, "weak")]["reason"] in ("stale_base", "not_top", "rejected_by_validators")
    assert record["published"] is None
    assert str(current_base(w.chain.sub, NETUID, COMPETITION16, w.store)) == published  # unchanged
    assert len(w.store.revisions(TINY_REPO)) == 2  # genesis and round 1: nothing new


def test_round_3_publishes_again_and_rollback_repoints_to_an_earlier_revision(world, capsys):
    w = world
    with torch_threads(1):
        record = averager(w).run_round().to_json()  # the record as written
    assert record["round"] == 3 and record["status"] == "published", record
    assert record["parent"] == w.rounds[0]["published"]
    gate = record["gate"]
    assert gate["merged_reward"] > gate["base_reward"]  # strictly better than round 1's base
    assert str(current_base(w.chain.sub, NETUID, COMPETITION16, w.store)) == record["published"]
    history = w.store.revisions(TINY_REPO)
    assert len(history) == 3 and history[0] == record["published"].split("@")[1]
    round1 = w.rounds[0]["published"].split("@")[1]
    w.chain.advance(1)
    args = ["base", "rollback", "--to", round1, "--netuid", str(NETUID), "--wallet.name", "owner",
            "--wallet.path", str(w.chain.wallet_path), "--chain.path", str(w.chain.path),
            "--competition", str(w.root / "competitions.yaml"), "--store", f"local:{w.store.root}"]
    assert cortex_main(args) == 0
    base = current_base(w.chain.sub, NETUID, COMPETITION16, w.store)
    assert base.revision == round1 and w.store.revisions(TINY_REPO) == history  # nothing squashed or added
    assert cortex_main([*args[:3], "0" * 64, *args[4:]]) == 2  # not a revision of the repo: refused
    assert current_base(w.chain.sub, NETUID, COMPETITION16, w.store).revision == round1
    w.chain.advance(1)
    assert cortex_main([*args[:3], w.genesis, *args[4:]]) == 0  # back to the genesis base
    assert current_base(w.chain.sub, NETUID, COMPETITION16, w.store).revision == w.genesis
    capsys.readouterr()
    assert cortex_main(["base", "history", *args[4:]]) == 0
    listed = capsys.readouterr().out.splitlines()  # every revision, newest first, the current one marked
    assert [line.split("@")[1].split()[0] for line in listed] == history
    assert [line for line in listed if "current base" in line] == [f"{TINY_REPO}@{w.genesis}  <- current base"]
