"""Competitions: invariants, the scoring settings, block scheduling, strict file loading."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from cortex.errors import CortexError
from cortex.protocol.commitment import ModelCommitment
from cortex.protocol.competition import (
    BUILTIN_COMPETITIONS,
    CORTEX_70B,
    CORTEX_TINY,
    LLAMA_TARGETS,
    AdapterLimits,
    BaseModelRef,
    Competition,
    CompetitionError,
    CompetitionSchedule,
    MAJOR_ASSETS,
    EvalConfig,
    SkillConfig,
    get_competition,
    load_competitions,
)
from cortex.reward.config import RewardConfig

SHA1 = "6f6073b423013f6a7d4d9f39144961bfbfbc386b"


def test_builtins():
    assert set(BUILTIN_COMPETITIONS) == {"cortex-tiny", "cortex-8b", "cortex-70b"}
    tiny = get_competition("cortex-tiny")
    assert tiny.base.follow_pointer and tiny.base.builtin and tiny.tokenizer is tiny.base
    assert tiny.adapters.target_modules == LLAMA_TARGETS
    assert tiny.eval.assets == MAJOR_ASSETS and tiny.eval.horizons_days == (1, 7)
    assert tiny.scoring.min_days <= 3  # the offline demo pays within minutes
    assert isinstance(tiny.reward, RewardConfig)
    big = get_competition("cortex-70b")
    assert big.base.repo == "meta-llama/Llama-3.3-70B-Instruct" and big.base.revision == SHA1
    assert big.adapters.max_rank > tiny.adapters.max_rank
    assert big.adapters.max_bytes > tiny.adapters.max_bytes
    hash(tiny), hash(big)  # frozen and hashable
    # breadth: tens of assets and several horizons, every (asset, horizon) asked within the day's budget
    assert len(big.eval.assets) >= 20 and len(big.eval.horizons_days) >= 3
    assert len(big.eval.assets) * len(big.eval.horizons_days) <= big.scoring.questions_per_day
    assert big.scoring.min_days < big.scoring.window_days and big.scoring.unearned == "burn"
    one_gpu = get_competition("cortex-8b")  # LoRA only: validators can batch adapters in one vLLM engine
    assert one_gpu.base.repo == "meta-llama/Llama-3.1-8B-Instruct" and len(one_gpu.base.revision) == 40
    assert one_gpu.adapters.types == ("lora",) and one_gpu.adapters.max_rank == 32
    assert one_gpu.adapters.target_modules == LLAMA_TARGETS and not one_gpu.base.follow_pointer


def test_unknown_competition_lists_known_ids():
    with pytest.raises(CompetitionError, match="unknown competition 'nope'; known: cortex-70b, cortex-8b, cortex-tiny"):
        get_competition("nope")


def with_(competition: Competition, **changes) -> Competition:
    return dataclasses.replace(competition, **changes)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: AdapterLimits(("lora",), 0, ("q_proj",), 10), "max_rank must be an integer >= 1"),
        (lambda: AdapterLimits(("qlora",), 8, ("q_proj",), 10), "types must be among"),
        (lambda: AdapterLimits((), 8, ("q_proj",), 10), "types must be a non-empty list"),
        (lambda: AdapterLimits(("lora",), 8, ("q_proj", "q_proj"), 10), "must not repeat"),
        (lambda: AdapterLimits(("lora",), 8, ("model.*",), 10), "target_modules"),
        (lambda: AdapterLimits(("lora",), 8, ("q_proj",), 0), "max_bytes"),
        (lambda: AdapterLimits(("lora",), True, ("q_proj",), 10), "max_rank"),
        (lambda: EvalConfig(("btc",), (1,), 8, 30), "assets"),
        (lambda: EvalConfig(("BTC",), (0,), 8, 30), "horizons_days"),
        (lambda: EvalConfig(("BTC",), (1, 7), 8, 7), "must exceed the longest horizon"),
        (lambda: EvalConfig(("BTC",), (1,), 0, 30), "prompts_per_round"),
        (lambda: EvalConfig(("BTC",), (1,), 8, 30, time_budget_s=0), "time_budget_s"),
        (lambda: EvalConfig(("BTC",), (1,), 8, 30, eligibility_delay_blocks=-1), "eligibility"),
        (lambda: BaseModelRef(repo="llama"), "namespace/name"),
        (lambda: BaseModelRef(repo="meta-llama/x"), "revision is required"),
        (lambda: BaseModelRef(repo="meta-llama/x", revision="main"), "40-hex commit sha"),
        (lambda: BaseModelRef(repo="meta-llama/x", revision=123), "40-hex commit sha"),
        (lambda: BaseModelRef(repo="a/b", revision=SHA1, averager_hotkey="5F"), "follow_pointer"),
        (lambda: with_(CORTEX_TINY, id="Cortex Tiny"), "id must be"),
        (lambda: with_(CORTEX_TINY, reward_share=-1.0), "reward_share"),
        (lambda: with_(CORTEX_TINY, reward_share=float("inf")), "reward_share"),
        (lambda: with_(CORTEX_TINY, start_block=-1), "start_block"),
        (lambda: with_(CORTEX_TINY, start_block=10, end_block=10), "end_block must be after"),
        (lambda: with_(CORTEX_TINY, reward={"floor": -1}), "reward must be a RewardConfig"),
        (lambda: CompetitionSchedule((CORTEX_TINY, CORTEX_TINY)), "unique"),
        (lambda: SkillConfig(window_days=0), "window_days must be an integer >= 1"),
        (lambda: SkillConfig(window_days=10, min_days=11), r"min_days \(11\) must not exceed window_days"),
        (lambda: SkillConfig(min_improvement=-0.01), "min_improvement must be a number >= 0"),
        (lambda: SkillConfig(copy_margin=float("nan")), "copy_margin"),
        (lambda: SkillConfig(confidence=1.0), r"confidence must be in \[0.5, 1\)"),
        (lambda: SkillConfig(confidence=0.4), "confidence"),
        (lambda: SkillConfig(weight_power=0), "weight_power must be a number > 0"),
        (lambda: SkillConfig(unearned="keep"), r"unearned must be one of \['burn', 'best'\]"),
        (lambda: SkillConfig(questions_per_day=0), "questions_per_day"),
        (lambda: with_(CORTEX_TINY, scoring={"window_days": 3}), "scoring must be a SkillConfig"),
    ],
)
def test_invariants(build, message: str):
    with pytest.raises(CompetitionError, match=message):
        build()


def test_lists_become_tuples():
    limits = AdapterLimits(["lora"], 4, ["q_proj", "v_proj"], 100)  # type: ignore[arg-type]
    assert limits.types == ("lora",) and limits.target_modules == ("q_proj", "v_proj")
    hash(limits)


def test_schedule_active_and_shares():
    early = with_(CORTEX_TINY, id="early", end_block=100, reward_share=3.0)
    late = with_(CORTEX_70B, id="late", start_block=50, reward_share=1.0)
    schedule = CompetitionSchedule((early, late))
    assert schedule.active(0) == (early,) and schedule.shares(0) == {"early": 1.0}
    assert schedule.shares(50) == {"early": 0.75, "late": 0.25}
    assert schedule.active(100) == (late,)  # end_block is exclusive
    assert schedule.get("late") is late
    with pytest.raises(CompetitionError, match="known: early, late"):
        schedule.get("cortex-tiny")
    assert CompetitionSchedule((with_(CORTEX_TINY, start_block=10),)).shares(5) == {}


@given(st.lists(st.floats(1e-6, 1e6), min_size=1, max_size=8), st.integers(0, 1000))
def test_shares_sum_to_one(shares, block):
    competitions = tuple(
        with_(CORTEX_TINY, id=f"c{i}", reward_share=s, start_block=i * 100)
        for i, s in enumerate(shares)
    )
    result = CompetitionSchedule(competitions).shares(block)
    assert set(result) == {c.id for c in competitions if c.start_block <= block}
    assert sum(result.values()) == pytest.approx(1.0)


def test_base_pointer_rules():
    owner, averager, miner = "5Owner", "5Averager", "5Miner"
    pointer = ModelCommitment("cortex-tiny", "cortex/base", SHA1, "ab" * 16, kind="base")
    adapter = dataclasses.replace(pointer, kind="adapter")
    assert CORTEX_TINY.is_base_pointer(pointer, owner, owner_hotkey=owner)
    assert not CORTEX_TINY.is_base_pointer(pointer, miner, owner_hotkey=owner)
    assert not CORTEX_TINY.is_base_pointer(adapter, owner, owner_hotkey=owner)
    assert not CORTEX_70B.is_base_pointer(pointer, owner, owner_hotkey=owner)  # pinned
    named = with_(CORTEX_TINY, base=dataclasses.replace(CORTEX_TINY.base, averager_hotkey=averager))
    assert named.is_base_pointer(pointer, averager, owner_hotkey=owner)
    assert not named.is_base_pointer(pointer, owner, owner_hotkey=owner)


def write(tmp_path: Path, data, name: str = "competitions.yaml") -> Path:
    path = tmp_path / name
    text = json.dumps(data) if name.endswith(".json") else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text if not isinstance(data, str) else data)
    return path


@pytest.mark.parametrize("name", ["competitions.yaml", "competitions.json"])
def test_builtins_round_trip_through_files(tmp_path: Path, name: str):
    data = {"competitions": [c.to_dict() for c in BUILTIN_COMPETITIONS.values()]}
    schedule = load_competitions(write(tmp_path, data, name))
    assert schedule.competitions == tuple(BUILTIN_COMPETITIONS.values())
    assert schedule.get("cortex-70b").fingerprint() == CORTEX_70B.fingerprint()


MINIMAL = {
    "id": "my-comp",
    "base": {"repo": "org/base-model", "revision": SHA1},
    "adapters": {"types": ["dora"], "max_rank": 16, "target_modules": ["q_proj"], "max_bytes": 1000},
    "eval": {"assets": ["BTC"], "horizons_days": [1], "prompts_per_round": 8, "eval_window_days": 10},
}


def test_minimal_definition_uses_defaults(tmp_path: Path):
    (competition,) = load_competitions(write(tmp_path, {"competitions": [MINIMAL]})).competitions
    assert competition.reward == RewardConfig()
    assert competition.adapters.types == ("dora",) and competition.eval.batch_size == 8
    assert competition.scoring == SkillConfig()


def test_scoring_settings_load_from_yaml(tmp_path: Path):
    data = edit("scoring", {"window_days": 45, "min_days": 20, "min_improvement": 0.001, "unearned": "best"})
    (competition,) = load_competitions(write(tmp_path, data)).competitions
    assert competition.scoring == SkillConfig(window_days=45, min_days=20, min_improvement=0.001, unearned="best")


def edit(path: str, value) -> dict:
    """MINIMAL with the dotted ``path`` set to ``value`` (or removed when value is ...)."""
    data = json.loads(json.dumps(MINIMAL))
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return {"competitions": [data]}


@pytest.mark.parametrize(
    "data, message",
    [
        (edit("tokenizer", "x"), r"competitions\[0\] \(my-comp\): unknown key 'tokenizer'"),
        (edit("adapters.rank", 4), r"competitions\[0\] \(my-comp\)\.adapters: unknown key 'rank'"),
        (edit("reward.flor", -1), r"\.reward: unknown key 'flor'"),
        (edit("eval.prompts_per_round", ...), r"\.eval\.prompts_per_round: required key is missing"),
        (edit("adapters.max_rank", "16"), r"\.adapters\.max_rank: expected an integer, got '16'"),
        (edit("adapters.max_rank", 16.0), r"\.adapters\.max_rank: expected an integer"),
        (edit("adapters.max_rank", True), r"\.adapters\.max_rank: expected an integer"),
        (edit("adapters.max_rank", 0), r"\.adapters: max_rank must be an integer >= 1, got 0"),
        (edit("adapters.types", "dora"), r"\.adapters\.types: expected a list"),
        (edit("eval.horizons_days", [1, "7"]), r"\.eval\.horizons_days\[1\]: expected an integer"),
        (edit("base.revision", 1234567), r"\.base\.revision: expected a string \(quote it in YAML\)"),
        (edit("base.follow_pointer", "yes"), r"\.base\.follow_pointer: expected true or false"),
        (edit("temperature", 0.05), r"my-comp\): unknown key 'temperature'"),
        (edit("reward", [1]), r"\.reward: expected a mapping"),
        (edit("scoring.window", 30), r"\.scoring: unknown key 'window'"),
        (edit("scoring.unearned", "keep"), r"unearned must be one of"),
        (edit("scoring.min_days", 1.5), r"\.scoring\.min_days: expected an integer"),
        ({"competitions": [MINIMAL, MINIMAL]}, "competition ids must be unique"),
        ({"competitions": []}, "expected a list"),
        ({"competition": [MINIMAL]}, "one top-level key 'competitions'"),
        ("competitions: [unclosed", "cannot read competitions"),
    ],
)
def test_strict_loading_names_the_key(tmp_path: Path, data, message: str):
    path = write(tmp_path, data)
    with pytest.raises(CompetitionError, match=message) as info:
        load_competitions(path)
    assert isinstance(info.value, CortexError) and "\n" not in str(info.value)
    assert str(info.value).startswith(str(path))


def test_missing_file(tmp_path: Path):
    with pytest.raises(CompetitionError, match="cannot read competitions"):
        load_competitions(tmp_path / "absent.yaml")


def test_yaml_example_in_docs_loads(tmp_path: Path):
    text = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    (competition,) = load_competitions(write(tmp_path, block)).competitions
    assert competition.id == "my-comp" and competition.scoring.window_days == 60
