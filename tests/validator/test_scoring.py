"""validator.scoring: skill against the base with day-clustered confidence, the earlier commitment's
advantage, unearned emission, hostile ledger entries, and the combination across competitions."""

import dataclasses
import math
import random
from datetime import date, timedelta
from statistics import NormalDist

import numpy as np
import pytest

from cortex.protocol.competition import SkillConfig
from cortex.protocol.ledger import LedgerEntry, Question
from validator.scoring import CompetitionScores, Contender, combine, day_interval, score_competition

COMP, BASE, AS_OF = "comp", "base@0", "2024-03-01"
SETTINGS = SkillConfig(window_days=40, min_days=10, min_improvement=0.0, confidence=0.95, copy_margin=0.002)
ASSETS = ("BTC", "ETH", "SOL", "NEAR", "BNB", "XRP")


def days(n: int, end: str = "2024-02-29") -> list[str]:
    last = date.fromisoformat(end)
    return [(last - timedelta(days=k)).isoformat() for k in reversed(range(n))]


def ledger(models: dict, n_days: int = 30, end: str = "2024-02-29", competition: str = COMP) -> list[LedgerEntry]:
    """Entries for ``models``: key → reward(day index, question index, question id) (None: no answer)."""
    out = []
    for i, day in enumerate(days(n_days, end)):
        for j, asset in enumerate(ASSETS):
            q = Question(competition, asset, day, 1)
            for key, reward in models.items():
                value = reward(i, j, q.id)
                if value is not None:
                    out.append(LedgerEntry(model=key, question=q.id, competition=competition, asset=asset,
                                           cutoff=day, horizon_days=1, reward=float(value)))
    return out


def noise(seed: int, scale: float = 0.02):
    rng = np.random.default_rng(seed)
    table = rng.normal(0, scale, size=(400, len(ASSETS)))
    return lambda i, j: float(table[i, j])


def contender(key: str, uid: int, block: int = 100) -> Contender:
    return Contender(key=key, hotkey=f"hk-{key}", uid=uid, commit_block=block, commit_day="2024-01-01")


def by_key(scores: CompetitionScores) -> dict:
    return {m.key: m for m in scores.models}


def base_reward(i, j, q):
    return 0.7 + noise(0, 0.05)(i, j)


def skilled(advantage: float, seed: int):
    e = noise(seed)
    return lambda i, j, q: base_reward(i, j, q) + advantage + e(i, j)


def test_zero_skill_gets_nothing_and_the_share_is_burned():
    same = base_reward  # answers exactly what the base answers
    coin = skilled(0.0, 7)  # noise around the base: no skill
    entries = ledger({BASE: base_reward, "same": same, "coin": coin})
    scores = score_competition(entries, [contender("same", 1), contender("coin", 2)], BASE, SETTINGS, as_of=AS_OF)
    skill = by_key(scores)
    assert skill["same"].advantage == 0.0 and skill["same"].ci_low == 0.0
    assert skill["same"].reason == skill["coin"].reason == "not_above_min_improvement"
    assert skill["coin"].ci_low < 0
    assert scores.weights == {} and scores.unearned == 1.0
    assert combine({COMP: scores}, {COMP: 1.0}, burn_key="owner") == {"owner": 1.0}


def test_more_skill_earns_more_weight():
    entries = ledger({BASE: base_reward, "good": skilled(0.02, 1), "better": skilled(0.05, 2)})
    scores = score_competition(entries, [contender("good", 1), contender("better", 2)], BASE, SETTINGS, as_of=AS_OF)
    skill = by_key(scores)
    assert skill["good"].earned and skill["better"].earned
    assert skill["good"].ci_low > 0 and skill["good"].advantage == pytest.approx(0.02, abs=0.01)
    assert skill["better"].weight > skill["good"].weight > 0
    assert skill["better"].weight + skill["good"].weight == pytest.approx(1.0)
    assert scores.weights == {"hk-better": skill["better"].weight, "hk-good": skill["good"].weight}
    assert scores.unearned == 0.0
    assert skill["better"].days == 30 and skill["better"].questions == 30 * len(ASSETS)
    # the shape: proportional to the advantage (weight_power 1)
    ratio = skill["better"].advantage / skill["good"].advantage
    assert skill["better"].weight / skill["good"].weight == pytest.approx(ratio)


def test_too_few_days_earns_nothing():
    entries = ledger({BASE: base_reward, "new": skilled(0.05, 3)}, n_days=9)
    scores = score_competition(entries, [contender("new", 1)], BASE, SETTINGS, as_of=AS_OF)
    assert by_key(scores)["new"].reason == "too_few_days" and by_key(scores)["new"].days == 9
    assert scores.weights == {} and scores.unearned == 1.0
    none = score_competition(entries, [contender("absent", 2)], BASE, SETTINGS, as_of=AS_OF)
    assert by_key(none)["absent"].reason == "no_answers" and by_key(none)["absent"].days == 0


def test_a_later_copy_gets_nothing_and_a_clearly_better_newcomer_earns():
    original = skilled(0.04, 4)
    near = noise(9, 0.0005)
    entries = ledger({BASE: base_reward, "original": original, "copy": original,
                      "tweak": lambda i, j, q: original(i, j, q) + 0.001 + near(i, j),
                      "leap": lambda i, j, q: original(i, j, q) + 0.03 + noise(5)(i, j)})
    models = [contender("original", 1, 100), contender("copy", 2, 200), contender("tweak", 3, 300),
              contender("leap", 4, 400)]
    scores = score_competition(entries, models, BASE, SETTINGS, as_of=AS_OF)
    skill = by_key(scores)
    assert skill["original"].earned and skill["original"].weight > 0
    assert (skill["copy"].reason, skill["copy"].versus, skill["copy"].weight) == ("copy_of_earlier", "original", 0.0)
    assert (skill["tweak"].reason, skill["tweak"].weight) == ("not_above_earlier", 0.0)
    assert skill["leap"].earned and skill["leap"].weight > skill["original"].weight
    # the same copy committed first would be the original: order is by commitment
    swapped = score_competition(entries, [contender("original", 1, 200), contender("copy", 2, 100)], BASE,
                                SETTINGS, as_of=AS_OF)
    assert by_key(swapped)["copy"].earned and by_key(swapped)["original"].reason == "copy_of_earlier"


def test_a_copy_of_an_original_that_does_not_earn_gets_nothing_either():
    """The original's bad first half keeps it from earning; a copy committed in the middle answers
    only the good second half, which alone would earn."""
    late_bloomer = skilled(0.0, 11)
    original = lambda i, j, q: late_bloomer(i, j, q) + (-0.05 if i < 15 else 0.04)  # noqa: E731
    entries = ledger({BASE: base_reward, "original": original,
                      "copy": lambda i, j, q: original(i, j, q) if i >= 15 else None})
    short = dataclasses.replace(SETTINGS, min_days=5)
    alone = score_competition(entries, [contender("copy", 2, 200)], BASE, short, as_of=AS_OF)
    assert by_key(alone)["copy"].earned
    scores = score_competition(entries, [contender("original", 1, 100), contender("copy", 2, 200)], BASE, short,
                               as_of=AS_OF)
    assert by_key(scores)["original"].reason == "not_above_min_improvement"
    assert by_key(scores)["copy"].reason == "copy_of_earlier" and by_key(scores)["copy"].weight == 0.0


def test_scoring_is_deterministic_and_independent_of_entry_order():
    entries = ledger({BASE: base_reward, "a": skilled(0.03, 1), "b": skilled(0.01, 2)})
    models = [contender("a", 1), contender("b", 2)]
    first = score_competition(entries, models, BASE, SETTINGS, as_of=AS_OF)
    shuffled = list(entries)
    random.Random(3).shuffle(shuffled)
    again = score_competition(shuffled, list(reversed(models)), BASE, SETTINGS, as_of=AS_OF)
    assert again.to_json() == first.to_json()
    assert CompetitionScores.from_json(first.to_json()) == first


def test_days_are_the_unit_of_the_interval():
    """A shock shared by every question of a day widens the interval; treating questions as
    independent would claim a precision the evidence does not have."""
    rng = np.random.default_rng(0)
    shock = rng.normal(0, 0.05, size=30)
    shock -= shock.mean()  # the true advantage is 0.01 exactly
    within = rng.normal(0, 0.005, size=(30, len(ASSETS)))
    within -= within.mean(axis=1, keepdims=True)
    entries = ledger({BASE: lambda i, j, q: 0.5, "m": lambda i, j, q: 0.5 + 0.01 + shock[i] + within[i, j]})
    m = by_key(score_competition(entries, [contender("m", 1)], BASE, SETTINGS, as_of=AS_OF))["m"]
    diffs = (0.01 + shock[:, None] + within).ravel()
    z = NormalDist().inv_cdf(0.95)
    naive_half_width = z * diffs.std(ddof=1) / math.sqrt(diffs.size)
    clustered_half_width = m.advantage - m.ci_low
    assert m.advantage == pytest.approx(diffs.mean())
    assert clustered_half_width > 2 * naive_half_width
    assert m.ci_low < 0 < naive_half_width and diffs.mean() - naive_half_width > 0  # naive would pay; days do not
    assert m.reason == "not_above_min_improvement"


def test_day_interval_counts_overlapping_horizons():
    """Positively autocorrelated daily results (overlapping multi-day questions) widen the bound."""
    base_days = [date(2024, 1, 1) + timedelta(days=k) for k in range(60)]
    rng = np.random.default_rng(1)
    shocks = rng.normal(0, 0.02, size=66)
    smooth = {d: [float(shocks[k:k + 7].sum())] for k, d in enumerate(base_days)}  # a 7-day moving sum
    independent = day_interval(smooth, 0.95, lags=0)
    overlapping = day_interval(smooth, 0.95, lags=6)
    assert overlapping.mean == independent.mean
    assert overlapping.mean - overlapping.low > 1.5 * (independent.mean - independent.low)


def test_unearned_best_pays_the_highest_bound_with_its_days():
    entries = ledger({BASE: base_reward, "a": skilled(0.003, 1), "b": skilled(0.0, 2),
                      "short": lambda i, j, q: base_reward(i, j, q) + 0.5 if i > 25 else None})
    models = [contender("a", 1), contender("b", 2), contender("short", 3)]
    strict = dataclasses.replace(SETTINGS, min_improvement=0.2)
    burn = score_competition(entries, models, BASE, strict, as_of=AS_OF)
    assert burn.weights == {} and burn.unearned == 1.0 and burn.unearned_rule == "burn"
    best = score_competition(entries, models, BASE, dataclasses.replace(strict, unearned="best"), as_of=AS_OF)
    skill = by_key(best)
    winner = max(("a", "b"), key=lambda k: skill[k].ci_low)
    assert best.weights == {f"hk-{winner}": 1.0} and best.unearned == 0.0
    assert skill[winner].weight == 1.0 and not skill[winner].earned  # paid by the rule, not earned
    assert skill["short"].reason == "too_few_days" and skill["short"].weight == 0.0
    assert combine({COMP: best}, {COMP: 1.0}, burn_key="owner") == {f"hk-{winner}": 1.0}


def test_malformed_and_foreign_entries_are_ignored_with_a_reason():
    clean = ledger({BASE: base_reward, "m": skilled(0.03, 1)})
    day = "2024-02-20"
    q = Question(COMP, "BTC", day, 1).id

    def entry(**kw):
        base = dict(model="m", question=q, competition=COMP, asset="BTC", cutoff=day, horizon_days=1, reward=0.9)
        return LedgerEntry(**{**base, **kw})

    hostile = [
        entry(competition="other"),
        entry(model="stranger"),
        entry(cutoff="yesterday", question="x1"),
        entry(horizon_days=0, question="x2"),
        entry(reward=float("nan"), question="x3"),
        entry(reward=float("inf"), question="x4"),
        entry(reward=None, question="x5", reason="generation_failed"),
        entry(reward=99.0),  # a second answer to a question "m" already answered
        entry(cutoff="2023-06-01", question="x6"),
        entry(cutoff="2024-03-01", question="x7"),  # resolves after as_of
    ]
    models = [contender("m", 1)]
    plain = score_competition(clean, models, BASE, SETTINGS, as_of=AS_OF, competition=COMP)
    mixed = score_competition(hostile + clean, models, BASE, SETTINGS, as_of=AS_OF, competition=COMP)
    assert mixed.models == plain.models and mixed.weights == plain.weights
    assert mixed.ignored == {"duplicate": 1, "malformed_question": 2, "non_finite_reward": 2, "other_competition": 1,
                             "outside_window": 1, "resolves_after_as_of": 1, "unknown_model": 1, "unresolved": 1}


def test_the_window_rolls_and_merged_credit_stays_until_it_rolls_out():
    """Days 0-14 against base A, days 15-29 against base B (A with the winner merged in): scored
    against the base of each day, the winner keeps the credit of its first 15 days."""
    merged = skilled(0.04, 1)
    entries = ledger({"A@0": base_reward, "B@1": merged, "winner": merged})
    mapping = {d: ("A@0" if i < 15 else "B@1") for i, d in enumerate(days(30))}
    per_day = by_key(score_competition(entries, [contender("winner", 1)], mapping, SETTINGS, as_of=AS_OF))["winner"]
    assert per_day.days == 30 and per_day.advantage == pytest.approx(0.02, abs=0.006) and per_day.earned
    only_new = by_key(score_competition(entries, [contender("winner", 1)], "B@1", SETTINGS, as_of=AS_OF))["winner"]
    assert only_new.advantage == 0.0 and not only_new.earned
    later = (date.fromisoformat(AS_OF) + timedelta(days=25)).isoformat()  # days 0-15 left the window
    rolled = by_key(score_competition(entries, [contender("winner", 1)], mapping, SETTINGS, as_of=later))["winner"]
    assert rolled.days == 14 and rolled.advantage == 0.0


def test_combine_splits_by_reward_share_and_burns_the_unearned_share():
    entries = ledger({BASE: base_reward, "m": skilled(0.05, 1)})
    paid = score_competition(entries, [contender("m", 1)], BASE, SETTINGS, as_of=AS_OF)
    other = ledger({BASE: base_reward}, competition="other")
    unpaid = score_competition(other, [contender("x", 2)], BASE, SETTINGS, as_of=AS_OF, competition="other")
    weights = combine({COMP: paid, "other": unpaid}, {COMP: 0.75, "other": 0.25}, burn_key="owner")
    assert weights == pytest.approx({"hk-m": 0.75, "owner": 0.25})
