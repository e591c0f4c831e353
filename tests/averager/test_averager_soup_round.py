"""The averager's greedy-soup step (averager.service.Averager._soup) with merging and scoring replaced by
fakes whose scores the test sets: which inputs it keeps, their weights, the merge it leaves in place."""

from __future__ import annotations

from types import SimpleNamespace

import averager.gate as G
from averager.select import Choice
from averager.service import Averager
from cortex.protocol.competition import CORTEX_TINY
from cortex.protocol.rounds import DROPPED, KEPT, GateResult, MergeReport


def choice(uid: int) -> Choice:
    return Choice(uid, f"hk{uid}", f"m/{uid}", "r" * 40, 10 + uid, 0.3, weight=0.25, detail="selected")


def fake_merge(self, base_dir, weighted, work):
    """A 'merge' that writes down what it blended, and with which weights."""
    out = work / "merged"
    out.mkdir(parents=True)
    (out / "weights.txt").write_text(repr([(a.name, w) for a, w in weighted]))
    return out, MergeReport(method="exact", base="b", inputs=[], modules_merged=1, content_hash="h")


def blended(model_dir) -> list:
    return eval((model_dir / "weights.txt").read_text())


def averager(tmp_path, monkeypatch, score) -> Averager:
    monkeypatch.setattr(Averager, "_merge", fake_merge)
    monkeypatch.setattr(G, "score_model", score)
    avg = Averager.__new__(Averager)
    avg.comp, avg.cfg, avg._gate_rows = CORTEX_TINY, SimpleNamespace(margin=0.0, device="cpu"), []
    (tmp_path / "work" / "merged").mkdir(parents=True)  # the blend that failed
    return avg


def test_the_soup_keeps_the_inputs_that_improve_it_and_leaves_its_merge_in_place(tmp_path, monkeypatch):
    chosen = [choice(1), choice(2), choice(3)]
    key = {c.uid: c.model_key for c in chosen}
    singles = {key[1]: 0.30, key[2]: 0.50, key[3]: 0.40}  # best single: uid 2
    gate = GateResult(0.35, 0.20, 0.50, key[2], 0.0, False, "blend below the best single", prompts=32, singles=singles)
    soups = {(key[2], key[3]): 0.55, (key[2], key[3], key[1]): 0.52}
    merged_with = []

    def score(model_dir, rows, competition, label, device="auto"):
        names = tuple(n for n, _ in blended(model_dir))
        merged_with.append(names)
        return G.Score(soups[tuple(key[int(n)] for n in names)])

    avg, work = averager(tmp_path, monkeypatch, score), tmp_path / "work"
    adapters = {c.hotkey: SimpleNamespace(name=str(c.uid)) for c in chosen}
    inputs, report, verdict = avg._soup(tmp_path / "base", chosen, adapters, gate, work)
    assert merged_with == [("2", "3"), ("2", "3", "1")]
    assert verdict.passed and verdict.merged_reward == 0.55 and verdict.prompts == 32
    assert [(s["added"], s["kept"]) for s in verdict.soup] == [(key[3], True), (key[1], False)]
    by_uid = {c.uid: c for c in inputs}
    assert by_uid[2].decision == by_uid[3].decision == KEPT and by_uid[2].weight == 0.5
    assert by_uid[1].decision == DROPPED and by_uid[1].reason == "not_in_soup"
    assert blended(work / "merged") == [("2", 0.5), ("3", 0.5)]


def test_a_soup_of_one_is_merged_at_full_weight_and_held_to_the_base(tmp_path, monkeypatch):
    chosen = [choice(1), choice(2)]
    key = {c.uid: c.model_key for c in chosen}
    singles = {key[1]: 0.30, key[2]: 0.50}
    gate = GateResult(0.35, 0.20, 0.50, key[2], 0.0, False, "blend below the best single", prompts=32, singles=singles)

    def score(model_dir, rows, competition, label, device="auto"):
        return G.Score({1: 0.49}.get(len(blended(model_dir)), 0.45))  # the best single alone, folded in: 0.49

    avg, work = averager(tmp_path, monkeypatch, score), tmp_path / "work"
    inputs, _, verdict = avg._soup(tmp_path / "base", chosen, {c.hotkey: SimpleNamespace(name=str(c.uid)) for c in chosen},
                                   gate, work)
    assert verdict.passed and verdict.merged_reward == 0.49  # beats the base 0.20; the best single is itself
    assert blended(work / "merged") == [("2", 1.0)]
    assert {c.uid: c.decision for c in inputs} == {1: DROPPED, 2: KEPT}


def test_the_soup_leaves_out_inputs_that_forecast_worse_than_the_base(tmp_path, monkeypatch):
    """The best single by reward forecasts worse than the base on the gate's prompts: the soup starts from the next,
    and a blend that would lower the base's Brier skill is not kept whatever its reward."""
    chosen = [choice(1), choice(2), choice(3)]
    key = {c.uid: c.model_key for c in chosen}
    singles = {key[1]: 0.30, key[2]: 0.50, key[3]: 0.40}  # by reward: uid 2, then 3, then 1
    skills = {key[1]: 0.12, key[2]: 0.05, key[3]: 0.15}  # uid 2 forecasts worse than the base (0.10)
    gate = GateResult(0.35, 0.20, 0.50, key[2], 0.0, False, "merged forecasts worse", prompts=32, singles=singles,
                      base_brier_skill=0.10, singles_brier_skill=skills)
    soups = {(key[3], key[1]): G.Score(0.45, 0.08), (key[3],): G.Score(0.40, 0.15)}
    merged_with = []

    def score(model_dir, rows, competition, label, device="auto"):
        names = tuple(key[int(n)] for n, _ in blended(model_dir))
        merged_with.append(names)
        return soups[names]

    avg, work = averager(tmp_path, monkeypatch, score), tmp_path / "work"
    inputs, _, verdict = avg._soup(tmp_path / "base", chosen, {c.hotkey: SimpleNamespace(name=str(c.uid)) for c in chosen},
                                   gate, work)
    assert merged_with[0] == (key[3], key[1])  # uid 2 never enters
    assert [(s["added"], s["kept"]) for s in verdict.soup] == [(key[1], False)]  # higher reward, worse forecast
    assert verdict.passed and verdict.merged_brier_skill == 0.15 and verdict.merged_reward == 0.40
    assert {c.uid: c.decision for c in inputs} == {1: DROPPED, 2: DROPPED, 3: KEPT}
    assert blended(work / "merged") == [("3", 1.0)]
