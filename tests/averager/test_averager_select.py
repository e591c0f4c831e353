"""The averager's choice of inputs: chain incentive, validators' tables, caps, clipping, duplicates, outliers."""

from types import SimpleNamespace

import pytest
import torch

from averager.geometry import gram, inner
from averager.merge import delta
from cortex.adapter import Adapter, LowRank
from averager.select import (
    DROPPED,
    KEPT,
    Choice,
    SelectConfig,
    cap_weights,
    cross_check,
    from_chain,
    kept,
    plan,
    top,
)
from cortex.protocol.commitment import ModelCommitment
from cortex.protocol.scores import CompetitionScores, CompetitionTable, ModelSkill, Refused, ScoreTable

COMP = "cortex-test"


def record(hotkey: str, block: int, *, comp: str = COMP, kind: str = "adapter", rev: str = "ab"):
    c = ModelCommitment.for_content(comp, f"{hotkey}/m", rev * 20, "cd" * 32, hotkey, kind=kind)
    return SimpleNamespace(hotkey=hotkey, block=block, commitment=c)


def choice(uid: int, incentive: float, block: int, **kw) -> Choice:
    return Choice(uid, f"hk{uid}", f"hk{uid}/m", "ab" * 20, block, incentive, **kw)


def test_from_chain_keeps_the_competitions_adapters_with_incentive():
    records = [record("a", 5), record("b", 3), record("c", 1, comp="cortex-70b"), record("d", 2, kind="base"),
               record("e", 4), record("ghost", 1), SimpleNamespace(hotkey="f", block=1, commitment=None)]
    uids = {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}
    out = from_chain(records, uids, {1: 0.4, 2: 0.6, 5: 0.0}, COMP)
    assert [(c.hotkey, c.decision, c.reason) for c in out] == [
        ("b", KEPT, "selected"), ("e", DROPPED, "no_incentive"), ("a", KEPT, "selected")]


def table(validator: str, rows: list) -> ScoreTable:
    skills = [r for r in rows if isinstance(r, ModelSkill)]
    scores = CompetitionScores(COMP, "2024-03-20", "2024-03-11", "base@1", skills)
    comp = CompetitionTable(COMP, "base@1", ["2024-03-11", "2024-03-20"], 10, 10, scores,
                            refused=[r for r in rows if isinstance(r, Refused)])
    return ScoreTable(1, 100, 10, validator, 1000, {COMP: comp})


def row(c: Choice, advantage: float, *, reason=None, earned=True):
    key = f"{c.repo}@{c.revision}"
    if reason is not None and not earned:
        return ModelSkill(key, c.hotkey, c.uid, c.commit_block, advantage, advantage - 0.1, advantage + 0.1, 10, 10,
                          False, reason, 0.0)
    if reason is not None:
        return Refused(c.hotkey, c.uid, key, c.commit_block, reason, "refused")
    return ModelSkill(key, c.hotkey, c.uid, c.commit_block, advantage, advantage - 0.1, advantage + 0.1, 10, 10,
                      True, "earned", 1.0)


def test_cross_check_drops_what_validators_refused_did_not_pay_or_never_scored():
    good, rejected, zero, unscored, split = (choice(i, 0.2, i) for i in range(5))
    tables = [table("v0", [row(good, 0.3), row(rejected, 0, reason="non_finite"),
                           row(zero, -1.0, reason="not_above_min_improvement", earned=False), row(split, 0.1)]),
              table("v1", [row(good, 0.5), row(rejected, 0, reason="non_finite"),
                           row(zero, -1.0, reason="not_above_min_improvement", earned=False),
                           row(split, 0, reason="too_few_days", earned=False)])]
    out = {c.uid: c for c in cross_check([good, rejected, zero, unscored, split], tables, COMP)}
    assert out[0].decision == KEPT and out[0].score == pytest.approx(0.4)
    assert (out[1].reason, out[2].reason, out[3].reason) == ("rejected_by_validators", "rejected_by_validators",
                                                             "unscored")
    assert "non_finite" in out[1].detail and "not_above_min_improvement" in out[2].detail
    assert out[4].decision == KEPT and out[4].score == pytest.approx(0.1)  # one of two tables is not a majority
    assert cross_check([good], [], COMP) == [good]  # no tables: incentive alone


def test_top_keeps_the_most_incentive_and_the_earliest_on_ties():
    out = top([choice(1, 0.1, 1), choice(2, 0.5, 9), choice(3, 0.5, 2), choice(4, 0.3, 3)], 2)
    assert [c.decision for c in out] == [DROPPED, KEPT, KEPT, DROPPED]
    assert out[0].reason == "not_top"


@pytest.mark.parametrize("raw,cap,expect", [
    ({"a": 8, "b": 1, "c": 1}, 0.5, {"a": 0.5, "b": 0.25, "c": 0.25}),
    ({"a": 6, "b": 3, "c": 1}, 0.4, {"a": 0.4, "b": 0.4, "c": 0.2}),
    ({"a": 1, "b": 1, "c": 1}, 0.5, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}),
    ({"a": 5}, 0.5, {"a": 0.5}),  # one miner never moves the base by more than the cap
    ({"a": 1, "b": 0}, 1.0, {"a": 1.0, "b": 0.0}),
])
def test_cap_weights(raw, cap, expect):
    assert cap_weights(raw, cap) == pytest.approx(expect)


def lowrank(seed: int, scale: float = 1.0, out: int = 12, inp: int = 10, r: int = 3) -> LowRank:
    g = torch.Generator().manual_seed(seed)
    return LowRank(A=torch.randn(r, inp, generator=g), B=torch.randn(out, r, generator=g), scale=scale)


def adapter(**modules: LowRank) -> Adapter:
    return Adapter(path=None, checked=None, modules=modules)  # type: ignore[arg-type]


def test_gram_in_low_rank_form_matches_the_dense_updates():
    f, g, h = lowrank(0, 0.5), lowrank(1, 2.0), lowrank(2)
    assert inner(f, g) == pytest.approx(float((delta(f) * delta(g)).sum()), rel=1e-5)
    adapters = [adapter(q=f, v=h), adapter(q=g), adapter(v=h, k=f)]
    G = gram(adapters)
    dense = [{m: delta(x) for m, x in a.modules.items()} for a in adapters]
    for i in range(3):
        for j in range(3):
            want = sum(float((dense[i][m] * dense[j][m]).sum()) for m in dense[i].keys() & dense[j].keys())
            assert G[i][j] == pytest.approx(want, rel=1e-5)


def test_plan_drops_the_later_duplicate_and_the_outlier_then_caps_and_clips():
    cfg = SelectConfig(max_weight=0.5, duplicate_cosine=0.99, outlier_factor=4.0)
    base_a = lowrank(0)
    updates = [adapter(q=base_a), adapter(q=lowrank(1)), adapter(q=lowrank(2, 3.0)),
               adapter(q=LowRank(base_a.A * 1.001, base_a.B, 1.0)),  # a near copy of the first, committed later
               adapter(q=lowrank(4, 50.0)),  # far too large
               adapter(q=lowrank(5, 0.5))]
    choices = [choice(0, 0.3, 1), choice(1, 0.2, 2), choice(2, 0.2, 3), choice(3, 0.9, 4), choice(4, 0.2, 5),
               choice(5, 0.1, 6)]
    out = plan(choices, gram(updates), cfg)
    by = {c.uid: c for c in out}
    assert by[3].reason == "duplicate" and "uid 0" in by[3].detail
    assert by[4].reason == "outlier"
    live = kept(out)
    assert [c.uid for c in live] == [0, 1, 2, 5]
    norms = sorted(c.norm for c in live)
    median = (norms[1] + norms[2]) / 2
    capped = cap_weights({c.uid: c.incentive for c in live}, 0.5)
    for c in live:
        assert c.clip == pytest.approx(min(1.0, median / c.norm))
        assert c.weight == pytest.approx(capped[c.uid] * c.clip)
    assert by[2].clip < 1 and by[5].clip == 1.0  # the large one is clipped, the small one is not
    assert sum(c.weight for c in live) <= 1.0


def test_plan_keeps_the_earliest_commitment_of_identical_updates_whatever_the_order():
    same = lowrank(7)
    out = plan([choice(1, 0.9, 8), choice(2, 0.1, 3)], gram([adapter(q=same), adapter(q=same)]), SelectConfig())
    assert [(c.uid, c.decision) for c in out] == [(1, DROPPED), (2, KEPT)]
    assert out[1].weight == pytest.approx(1.0)  # alone: the whole update (the cap bounds a share of a blend)


def test_plan_refuses_a_gram_matrix_of_the_wrong_size():
    with pytest.raises(ValueError, match="kept"):
        plan([choice(1, 0.5, 1)], [], SelectConfig())
