"""The averager's round record and manifest, and the miner's run metrics: typed records that writers and
readers share (cortex.protocol.rounds, cortex.protocol.metrics)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from averager.publish import finalise, manifest, model_card
from averager.select import Choice
from cortex.leaderboard.files import averager_rounds
from cortex.protocol.competition import CORTEX_TINY
from cortex.protocol.metrics import RunMetrics
from cortex.protocol.records import RecordError
from cortex.protocol.rounds import AveragerRound, GateResult, Manifest, MergeReport, RoundInput
from miner.metrics import read_metrics, write_metrics

GATE = GateResult(merged_reward=0.4, base_reward=0.1, best_single_reward=0.3, best_single="m/a@" + "c" * 40,
                  margin=0.0, passed=True, reason="merged beats both", prompts=8, singles={"m/a@" + "c" * 40: 0.3})
INPUT = RoundInput(uid=3, hotkey="5Fm", repo="m/a", revision="c" * 40, commit_block=7, incentive=0.5, score=0.2,
                   weight=1.0, norm=2.5, clip=1.0)
ROUND = AveragerRound(round=2, block=40, competition="cortex-tiny", status="published", reason="gate passed",
                      inputs=[INPUT, replace(INPUT, uid=4, decision="dropped", reason="duplicate", weight=0.0)],
                      gate=GATE, parent="cortex/tiny-llama@" + "a" * 64, published="cortex/tiny-llama@" + "b" * 40,
                      pointer_block=41)


def test_a_round_round_trips_and_its_choices_are_its_inputs(tmp_path):
    ROUND.write(tmp_path / "round-000002.json")
    assert AveragerRound.read(tmp_path / "round-000002.json") == ROUND
    choice = Choice(3, "5Fm", "m/a", "c" * 40, 7, 0.5, score=0.2, weight=1.0, norm=2.5, clip=1.0)
    assert isinstance(choice, RoundInput) and choice.to_json() == INPUT.to_json()
    dropped = choice.drop("duplicate", "the same update as uid 2")
    assert RoundInput.from_json(dropped.to_json()).reason == "duplicate"


@pytest.mark.parametrize("change, message", [
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"schema": 2}, "averager_round schema 2 is not 1"),
    ({"kind": "score_table"}, "this is a 'score_table' record"),
    ({"status": "exploded"}, "status: expected one of 'published', 'rejected', 'skipped'"),
    ({"status": "skipped"}, "a published round names its base"),
    ({"round": "2"}, r"round: expected an integer"),
    ({"inputs": [{"uid": 1}]}, r"inputs\[0\]\.hotkey: required key is missing"),
    ({"gate": {**GATE.to_json(), "passed": "yes"}}, r"gate\.passed: expected true or false"),
    ({"method": "average"}, r"method: expected one of 'exact', 'rank-r'"),
])
def test_what_the_averager_does_not_write_is_refused(change, message):
    with pytest.raises(RecordError, match=message):
        AveragerRound.from_json({**ROUND.to_json(), **change})


def test_readers_skip_a_hostile_round_and_keep_the_rest(tmp_path, caplog):
    rounds = tmp_path / "averager" / "rounds"
    ROUND.write(rounds / "round-000002.json")
    (rounds / "round-000003.json").write_text('{"round": 3, "status": "published", "inputs": "all of them"}')
    (rounds / "round-000004.json").write_text("[" * 100_000)
    hostile = {**ROUND.to_json(), "round": 5, "gate": {**GATE.to_json(), "merged_reward": float("nan")}}
    (rounds / "round-000005.json").write_text(json.dumps(hostile))
    with caplog.at_level(logging.WARNING, logger="cortex.leaderboard.files"):
        read = averager_rounds([tmp_path])
    assert [r["round"] for r in read] == [2] and read[0]["gate"]["merged_reward"] == 0.4
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping")]
    assert len(skipped) == 3 and any("gate.merged_reward: expected a finite number" in m for m in skipped)


def test_the_manifest_is_written_with_its_hash_and_read_back(tmp_path):
    folder = tmp_path / "merged"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    choice = Choice(3, "5Fm", "m/a", "c" * 40, 7, 0.5, score=0.2, weight=1.0, clip=1.0)
    man = manifest(CORTEX_TINY, 2, "cortex/tiny-llama@" + "a" * 64, [choice],
                   MergeReport("rank-r", "base", [], 14, "d" * 64, dtype="float32", rank=2, energy={"q_proj": 0.9}),
                   GATE, "5Faverager")
    written = finalise(folder, man, "cortex/tiny-llama")
    assert written.model_hash and Manifest.read(folder / "manifest.json") == written
    assert written.models == {"m/a@" + "c" * 40} and written.energy_kept == {"q_proj": 0.9}
    card = (folder / "README.md").read_text()
    assert card == model_card(man, "cortex/tiny-llama") and "Rank-2 delta" in card and "`m/a@" in card
    data = json.loads((folder / "manifest.json").read_text())
    with pytest.raises(RecordError, match="unknown key 'format'"):
        Manifest.from_json({**data, "format": "cortex-base/1"})  # an older averager's manifest is not guessed at


def test_run_metrics_round_trip_and_refuse_undeclared_keys(tmp_path):
    metrics = {"competition": "cortex-tiny", "base": "cortex/tiny-llama@" + "a" * 64, "processes": 1,
               "config": {"lora_rank": 4, "stage": ["sft"]}, "stages": {"sft": {"global_step": 4,
                                                                                 "eval_loss_curve": [[0, 2.5]]}},
               "eval_loss_initial": 2.5, "eval_loss_best": float("nan"), "heldout_reward_adapter": 0.1,
               "publish_decision": False, "publish_reason": "offline"}
    write_metrics(tmp_path, metrics)
    back = read_metrics(tmp_path)
    assert back["stages"]["sft"]["global_step"] == 4 and back["eval_loss_best"] is None  # NaN: JSON has none
    assert back == RunMetrics.read(tmp_path / "metrics.json").plain() and back["published"] is None
    with pytest.raises(RecordError, match="unknown key 'sft_global_step'"):
        write_metrics(tmp_path, {**metrics, "sft_global_step": 4})
    (tmp_path / "metrics.json").write_text('{"competition": 1}')
    with pytest.raises(RecordError, match="competition: expected a string"):
        read_metrics(tmp_path)
    assert read_metrics(tmp_path / "absent") == {}


def test_the_averager_merges_as_if_a_hostile_manifest_held_nothing(tmp_path, caplog):
    from averager.service import Averager
    from cortex.model.pointer import BaseRef

    class Store:
        def download(self, repo, revision, out: Path, **kw):
            out.mkdir(parents=True, exist_ok=True)
            (out / "manifest.json").write_text('{"kind": "base_manifest", "inputs": "everything"}')
            return out

    averager = Averager.__new__(Averager)
    averager.store = Store()
    choice = Choice(3, "5Fm", "m/a", "c" * 40, 7, 0.5)
    base = BaseRef("cortex/tiny-llama", "a" * 64)
    with caplog.at_level(logging.WARNING, logger="averager.service"):
        assert averager._not_merged_yet([choice], base, tmp_path) == [choice]
    assert "manifest is not readable" in caplog.text


def test_publish_base_uploads_the_manifest_and_commits_the_pointer(tmp_path):
    from chainkit import NETUID, make_chain

    from averager.publish import publish_base
    from cortex.hub.local import LocalStore
    from cortex.model.pointer import current_base

    chain = make_chain(tmp_path, tempo=10)
    owner, store = chain.register("owner"), LocalStore(tmp_path / "store")
    chain.advance(1)
    folder = tmp_path / "merged"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    choice = Choice(3, "5Fm", "m/a", "c" * 40, 7, 0.5, weight=1.0)
    man = finalise(folder, manifest(CORTEX_TINY, 1, "cortex/tiny-llama@" + "a" * 64, [choice],
                                    MergeReport("exact", "base", [], 14, "d" * 64), GATE, owner.hotkey.ss58_address), "cortex/tiny-llama")
    done = publish_base(chain.sub, owner, NETUID, store, CORTEX_TINY, "cortex/tiny-llama", folder)
    assert current_base(chain.sub, NETUID, CORTEX_TINY, store).revision == done.revision
    published = store.download("cortex/tiny-llama", done.revision, tmp_path / "back", allow=["manifest.json"],
                               max_bytes=1 << 20)
    assert Manifest.read(published / "manifest.json") == man
