"""The greedy soup and the one-input rule of the merge gate (averager.gate)."""

from averager.gate import decide, greedy_soup
from cortex.protocol.rounds import GateResult


def test_a_lone_input_at_full_weight_is_held_to_beating_the_base_only():
    singles = {"a/x@1": 0.30}
    assert decide(0.29, 0.10, singles, margin=0.0, against_best=False).passed  # the merge is that adapter
    assert not decide(0.29, 0.10, singles, margin=0.0).passed  # a blend must match its best input
    lone = decide(0.05, 0.10, singles, margin=0.0, against_best=False)
    assert not lone.passed and "does not beat the base" in lone.reason


def test_the_soup_adds_an_input_only_while_the_score_improves():
    scores = {("a", "b"): 0.50, ("a", "b", "c"): 0.45, ("a", "b", "d"): 0.55}
    asked = []

    def score(keys):
        asked.append(tuple(keys))
        return scores.get(tuple(keys))

    soup, best, steps = greedy_soup(["a", "b", "c", "d"], 0.40, score)
    assert soup == ["a", "b", "d"] and best == 0.55
    assert asked == [("a", "b"), ("a", "b", "c"), ("a", "b", "d")]
    assert [(s["added"], s["kept"]) for s in steps] == [("b", True), ("c", False), ("d", True)]


def test_a_soup_that_never_improves_is_the_best_single_and_a_failed_merge_is_not_kept():
    soup, best, steps = greedy_soup(["a", "b", "c"], 0.40, lambda keys: {"b": 0.40, "c": None}[keys[-1]])
    assert soup == ["a"] and best == 0.40  # a tie is no improvement
    assert [s["kept"] for s in steps] == [False, False] and steps[1]["score"] is None
    assert greedy_soup(["a"], 0.3, lambda keys: 1.0) == (["a"], 0.3, [])


def test_the_gate_record_keeps_the_soups_steps():
    gate = GateResult(0.5, 0.1, 0.4, "a", 0.0, True, "ok", prompts=48, soup=[{"added": "b", "score": 0.5, "kept": True}])
    assert GateResult.from_json(gate.to_json()) == gate
    assert GateResult.from_json({**gate.to_json(), "soup": None}).soup is None
