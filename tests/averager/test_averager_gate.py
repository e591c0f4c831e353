"""The merge gate: the decision rule, and the held-out set it is scored on."""

from datetime import date

import pytest

from averager.gate import decide, gate_rows
from cortex.data import get_source
from cortex.errors import CortexError
from cortex.eval.evalset import SimulatedClock, eval_set, gate_window
from cortex.protocol.competition import CORTEX_TINY


def test_the_merge_must_beat_the_base_and_match_the_best_single_adapter_plus_the_margin():
    singles = {"a/x@1": 0.20, "b/y@2": 0.35, "c/z@3": None}  # c failed: not a contender
    passed = decide(0.40, -1.0, singles, margin=0.05)
    assert passed.passed and passed.best_single == "b/y@2" and passed.best_single_reward == 0.35
    assert not decide(0.38, -1.0, singles, margin=0.05).passed  # beats b, but not by the margin
    worse = decide(-0.5, 0.1, singles, margin=0.0)
    assert not worse.passed and "does not beat the base" in worse.reason
    assert not decide(0.1, 0.1, {}, margin=0.0).passed  # a tie with the base is no improvement
    assert decide(0.35, 0.1, singles, margin=0.0).passed  # at margin 0 a tie with the best adapter is enough
    assert not decide(None, 0.1, singles, margin=0.0).passed
    assert decide(0.2, None, {}, margin=0.0).passed  # nothing to compare with (the base failed to answer)


def test_a_merge_that_forecasts_worse_than_the_base_fails_even_when_its_reward_is_higher():
    singles = {"a/x@1": 0.30}
    worse = decide(1.25, 1.10, singles, margin=0.0, against_best=False, merged_skill=0.07, base_skill=0.10)
    assert not worse.passed and "Brier skill" in worse.reason and "forecast worse" in worse.reason
    assert (worse.merged_brier_skill, worse.base_brier_skill) == (0.07, 0.10)
    assert decide(1.25, 1.10, singles, margin=0.0, against_best=False, merged_skill=0.10, base_skill=0.10).passed
    assert decide(1.25, 1.10, singles, margin=0.0, against_best=False, merged_skill=0.2, base_skill=None).passed
    # the reward rule still comes first: a sharper forecaster that writes worse is not taken either
    assert not decide(1.05, 1.10, singles, margin=0.0, against_best=False, merged_skill=0.3, base_skill=0.1).passed


def test_gate_rows_are_deterministic_held_out_and_not_the_validators_draw():
    comp = CORTEX_TINY
    source = get_source("synthetic")
    win = gate_window(SimulatedClock(date(2024, 1, 1), 10), 600, comp.eval)
    rows = gate_rows(comp, source, win, "0x" + "11" * 32)
    assert rows == gate_rows(comp, source, win, "0x" + "11" * 32)
    assert len(rows) == comp.eval.prompts_per_round
    assert all(win.start.isoformat() <= r["cutoff"] <= win.end.isoformat() for r in rows)
    frames = source.load(list(comp.eval.assets), "2023-06-01", win.end)
    validators = [s.row() for s in eval_set(frames, comp.eval, win, "0x" + "11" * 32, comp.id, source=source.name,
                                            synthetic=True)]
    key = lambda r: (r["asset"], r["cutoff"], r["horizon_days"])
    assert {key(r) for r in rows} != {key(r) for r in validators}
    assert rows != gate_rows(comp, source, win, "0x" + "22" * 32)


def test_gate_rows_refuse_an_empty_window():
    comp = CORTEX_TINY
    win = gate_window(SimulatedClock(date(2017, 2, 10), 10), 50, comp.eval)  # too little history for a prompt
    with pytest.raises(CortexError, match="no resolved samples"):
        gate_rows(comp, get_source("synthetic"), win, "0x" + "11" * 32)


def test_the_forecast_rule_protects_only_a_base_that_answers(monkeypatch):
    """A base whose answers mostly fail to parse has no forecast to lose: a merge that answers is held to the
    reward alone (``run_gate`` passes no base skill); one that parses keeps the rule."""
    import averager.gate as G

    scores = {"base": G.Score(-0.9, 0.0, 0.1), "a/x@1": G.Score(0.8, -0.3, 1.0), "merged": G.Score(0.8, -0.3, 1.0)}
    monkeypatch.setattr("cortex.eval.generate.Generator.load", classmethod(lambda cls, *a, **k: object()))
    monkeypatch.setattr(G, "_score", lambda gen, rows, comp, key, adapter=None: scores[key])
    monkeypatch.setattr(G, "score_model", lambda d, rows, comp, key, device="auto": scores[key])
    passed = G.run_gate(None, None, {"a/x@1": None}, [{}], CORTEX_TINY, margin=0.0)
    assert passed.passed and passed.base_brier_skill is None and passed.singles_brier_skill == {"a/x@1": -0.3}
    scores["base"] = G.Score(0.5, 0.0, 0.9)
    refused = G.run_gate(None, None, {"a/x@1": None}, [{}], CORTEX_TINY, margin=0.0)
    assert not refused.passed and refused.base_brier_skill == 0.0 and "forecast worse" in refused.reason


def test_the_format_rule_allows_a_share_of_the_counted_prompts_beyond_the_base():
    from averager.gate import format_no_worse

    assert format_no_worse(2, 0, 128, 0.02) and not format_no_worse(3, 0, 128, 0.02)  # 2.56 more allowed
    assert format_no_worse(4, 2, 128, 0.02) and format_no_worse(0, 5, 128, 0.0)
    assert not format_no_worse(1, 0, 128, 0.0)  # 0: not one failure more than the base


def passed_gate(**counts):
    from cortex.protocol.rounds import GateResult

    return GateResult(1.2, 1.1, 1.2, "a/x@1", 0.0, True, "merged +1.2000 (one input at full weight) ≥ base 1.1",
                      prompts=32, **counts)


def test_a_merge_that_loses_its_format_on_the_format_prompts_is_refused(monkeypatch):
    """The gate's 32 prompts all parse; on 96 more the merge fails 6 (6%) and the base 0: refused, with the counts
    of both sets in the record. One failure more passes."""
    import averager.gate as G

    got = {}

    def score(model_dir, rows, comp, key, device="auto"):
        return G.Score(1.0, 0.1, 1.0, got["base"]) if key.startswith("base") else G.Score(1.2, 0.1, 0.9, got["merged"])

    monkeypatch.setattr(G, "score_model", score)
    rows = [{}] * 96
    got.update(base=0, merged=6)
    refused = G.check_format(passed_gate(merged_failures=0, base_failures=0), None, None, rows, CORTEX_TINY, 0.02)
    assert not refused.passed and "6 of 128 prompts out of format against the base's 0" in refused.reason
    assert (refused.format_prompts, refused.merged_format_failures, refused.base_format_failures) == (128, 6, 0)
    got.update(base=1, merged=2)
    kept = G.check_format(passed_gate(merged_failures=1, base_failures=0), None, None, rows, CORTEX_TINY, 0.02)
    assert kept.passed and (kept.merged_format_failures, kept.base_format_failures) == (3, 1)
    assert kept.reason == passed_gate().reason
    # no prompts of its own (no market data that far back): the gate's are counted alone
    alone = G.check_format(passed_gate(merged_failures=2, base_failures=0), None, None, [], CORTEX_TINY, 0.02)
    assert not alone.passed and alone.format_prompts == 32
    # a merge or a base with no answers at all (budget, crash) is not a format count: the gate stands
    monkeypatch.setattr(G, "score_model", lambda d, rows, comp, key, device="auto":
                        G.Score(1.0, 0.1, 1.0, 0) if key.startswith("base") else G.Score(None))
    assert G.check_format(passed_gate(merged_failures=0, base_failures=0), None, None, rows, CORTEX_TINY, 0.02).passed


def test_format_rows_come_from_the_last_market_days_under_their_own_salt():
    from averager.gate import FORMAT_DAYS, format_rows

    import dataclasses

    comp = dataclasses.replace(CORTEX_TINY, eval=dataclasses.replace(CORTEX_TINY.eval, eval_window_days=10))
    source, clock = get_source("synthetic"), SimulatedClock(date(2024, 1, 1), 10)
    rows = format_rows(comp, source, clock, 600, "0x" + "11" * 32, 96)
    assert len(rows) == 96 and rows == format_rows(comp, source, clock, 600, "0x" + "11" * 32, 96)
    end = clock.day(600)
    assert all((end - date.fromisoformat(r["cutoff"])).days < FORMAT_DAYS for r in rows)
    assert len({r["cutoff"] for r in rows}) > comp.eval.eval_window_days  # wider than the gate's window
    key = lambda r: (r["asset"], r["cutoff"], r["horizon_days"])
    gate = gate_rows(comp, source, gate_window(clock, 600, comp.eval), "0x" + "11" * 32)
    assert {key(r) for r in rows} != {key(r) for r in gate}
