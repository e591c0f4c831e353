"""From ledger entries to weights: skill against the base, with confidence (DESIGN.md §9).

A pure function: no chain, no model, no clock, no randomness. Two validators with the same ledger
entries, contenders and settings get the same weights, and anyone can replay a decision from a
ledger export. docs/validator.md ("Scoring") states the rules; in short, per competition:

1. **Window.** The questions of the ``window_days`` market days up to ``as_of`` (by cutoff day, the
   window of ``cortex.eval.evalset``, as ``validator.questions`` asks and prunes them) whose outcome is known by ``as_of``. Entries of
   other competitions, unresolved ones, non-finite rewards, malformed days, duplicates and unknown
   models are ignored and counted by reason.
2. **Paired advantage.** Per question that both a model and the base answered, the difference of
   their rewards. The base is the one current on the question's day: ``base_key`` is one key, or a
   mapping from question day (cutoff) to the base key of that day, so credit earned against an
   older base stays in the window after the averager merges it, and rolls out with the window.
3. **Days are the unit.** The differences of a day are averaged (one market moves all assets of a
   day together); the advantage is the mean of the daily means. Its standard error is the
   Newey-West (Bartlett) long-run variance of the daily series, with lags up to the longest
   horizon − 1 day because questions of neighbouring days overlap in time. The one-sided bound at
   ``confidence`` is advantage ± z·se (z the normal quantile).
4. **Earning.** A model earns when it has ``min_days`` days and its lower bound exceeds
   ``min_improvement``, and the earlier commitment keeps its advantage: a model whose answers
   score exactly as an earlier model's on every question both answered is a copy; a model must
   also beat every earlier model with an advantage (point estimate above ``min_improvement``),
   paired on the questions both answered over at least ``min_days`` days, with a lower bound above
   ``copy_margin``. Otherwise it gets nothing (``copy_of_earlier`` / ``not_above_earlier``). Earners are weighted
   ∝ (advantage − min_improvement) ** weight_power, summing to 1: the lower bound decides who
   earns, the estimate how much (a lower bound also shrinks with the spread of a model's daily
   results, which grows with the size of its bets, and would rank a bold skilled forecaster below
   a timid one; bench/skill_power.py measured both).
5. **Unearned.** When no model earns, ``unearned: burn`` gives the competition's share to the
   owner (``combine(..., burn_key=…)``), ``unearned: best`` to the model with the highest lower
   bound that has its days and is not a copy (burn if there is none): the subnet owner's choice.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from cortex.eval.evalset import window_start
from cortex.eval.interval import Interval, day_interval  # noqa: F401 - re-exported (tests, bench)
from cortex.protocol.competition import SkillConfig
from cortex.protocol.ledger import LedgerEntry
from cortex.protocol.scores import CompetitionScores, ModelSkill

IDENTICAL = 1e-12  # paired differences this small are the same answer's score


@dataclass(frozen=True)
class Contender:
    """One model of a competition, as the chain says (the base is not a contender)."""

    key: str  # model key "repo@revision" (matches LedgerEntry.model)
    hotkey: str
    uid: int
    commit_block: int
    commit_day: str  # ISO day of the commitment's block on the market clock


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def _paired(a: Mapping[str, tuple[date, float]], b: Mapping[str, tuple[date, float]]) -> dict[date, list[float]]:
    """Day → differences a − b over the questions both answered."""
    out: dict[date, list[float]] = defaultdict(list)
    for question in sorted(set(a) & set(b)):
        day, reward = a[question]
        out[day].append(reward - b[question][1])
    return out


def score_competition(entries: Iterable[LedgerEntry], contenders: Sequence[Contender],
                      base_key: str | Mapping[str, str], settings: SkillConfig, *, as_of: str,
                      competition: str | None = None) -> CompetitionScores:
    """Score one competition's models from its ledger entries at market day ``as_of`` (module docstring).

    ``base_key``: the base's model key, or a mapping from question day (ISO cutoff) to the key of
    the base that was current that day (days without one are not counted). ``competition``: keep
    only entries of this competition (default: that of the first entry in (model, question) order).
    """
    end = date.fromisoformat(as_of)
    start = window_start(end, settings.window_days)
    bases = {base_key} if isinstance(base_key, str) else set(base_key.values())
    wanted = {c.key for c in contenders} | bases
    ignored: Counter[str] = Counter()
    answers: dict[str, dict[str, tuple[date, float]]] = defaultdict(dict)  # model → question → (day, reward)
    seen: set[tuple[str, str]] = set()
    longest = 1
    for e in sorted(entries, key=lambda x: (x.model, x.question, x.generated_block, repr(x.reward))):
        competition = competition or e.competition
        day = _day(e.cutoff)
        if e.competition != competition:
            ignored["other_competition"] += 1
        elif e.model not in wanted:
            ignored["unknown_model"] += 1
        elif day is None or not isinstance(e.horizon_days, int) or e.horizon_days < 1:
            ignored["malformed_question"] += 1
        elif (e.model, e.question) in seen:
            ignored["duplicate"] += 1
        elif e.reward is None:
            ignored["unresolved"] += 1
        elif not isinstance(e.reward, (int, float)) or not math.isfinite(e.reward):
            ignored["non_finite_reward"] += 1
        elif not start <= day <= end:
            ignored["outside_window"] += 1
        elif day + timedelta(days=e.horizon_days) > end:
            ignored["resolves_after_as_of"] += 1
        else:
            seen.add((e.model, e.question))
            answers[e.model][e.question] = (day, float(e.reward))
            longest = max(longest, e.horizon_days)

    def base_answers(model: str) -> dict[str, tuple[date, float]]:
        """The base's answers, each from the base current on the question's day."""
        if isinstance(base_key, str):
            return answers.get(base_key, {})
        out = {}
        for question, (day, _) in answers.get(model, {}).items():
            current = base_key.get(day.isoformat())
            if current is not None and question in answers.get(current, {}):
                out[question] = answers[current][question]
        return out

    lags = longest - 1
    order = sorted(contenders, key=lambda c: (c.commit_block, c.uid, c.key))
    skills: dict[str, Interval] = {c.key: day_interval(_paired(answers.get(c.key, {}), base_answers(c.key)),
                                                       settings.confidence, lags) for c in order}
    reasons: dict[str, tuple[str, str | None]] = {}
    earners: list[Contender] = []
    for c in order:
        s = skills[c.key]
        if s.days == 0:
            reasons[c.key] = ("no_answers", None)
        elif s.days < settings.min_days:
            reasons[c.key] = ("too_few_days", None)
        elif s.low <= settings.min_improvement:
            reasons[c.key] = ("not_above_min_improvement", None)
        else:
            reasons[c.key] = ("earned", None)
            for earlier in order:
                if earlier.commit_block >= c.commit_block:
                    break
                diffs = _paired(answers.get(c.key, {}), answers.get(earlier.key, {}))
                if diffs and all(abs(d) <= IDENTICAL for v in diffs.values() for d in v):
                    reasons[c.key] = ("copy_of_earlier", earlier.key)
                    break
                if skills[earlier.key].mean <= settings.min_improvement:
                    continue  # no advantage to keep
                versus = day_interval(diffs, settings.confidence, lags)
                if versus.days >= settings.min_days and versus.low <= settings.copy_margin:
                    reasons[c.key] = ("not_above_earlier", earlier.key)
                    break
            if reasons[c.key][0] == "earned":
                earners.append(c)

    weights: dict[str, float] = {}
    margins = {c.key: (skills[c.key].mean - settings.min_improvement) ** settings.weight_power for c in earners}
    total = sum(margins.values())
    for c in earners:
        weights[c.hotkey] = weights.get(c.hotkey, 0.0) + margins[c.key] / total
    paid = {c.key: margins[c.key] / total for c in earners}
    unearned = 0.0 if earners else 1.0
    if not earners and settings.unearned == "best":
        eligible = [c for c in order if reasons[c.key][0] == "not_above_min_improvement"]
        if eligible:
            best = max(eligible, key=lambda c: (skills[c.key].low, -c.commit_block, -c.uid))
            weights[best.hotkey], paid[best.key], unearned = 1.0, 1.0, 0.0

    models = [ModelSkill(key=c.key, hotkey=c.hotkey, uid=c.uid, commit_block=c.commit_block,
                         advantage=skills[c.key].mean, ci_low=skills[c.key].low, ci_high=skills[c.key].high,
                         days=skills[c.key].days, questions=skills[c.key].questions,
                         earned=reasons[c.key][0] == "earned", reason=reasons[c.key][0],
                         weight=paid.get(c.key, 0.0), versus=reasons[c.key][1]) for c in order]
    if isinstance(base_key, str):
        newest = base_key
    else:
        counted = [d for d in base_key if _day(d) is not None and _day(d) <= end]
        newest = base_key[max(counted)] if counted else ""
    return CompetitionScores(competition=competition or "", as_of=end.isoformat(), window_start=start.isoformat(),
                             base_key=newest, models=models, weights=dict(sorted(weights.items())),
                             unearned=unearned, unearned_rule=settings.unearned, ignored=dict(sorted(ignored.items())))


def split_by_share(per_competition: Mapping[str, Mapping[Hashable, float]],
                   shares: Mapping[str, float]) -> dict[Hashable, float]:
    """Combine competitions: each one's (normalised) weights times its reward share; sums to 1."""
    total_share = sum(shares.get(c, 0.0) for c in per_competition)
    out: dict[Hashable, float] = {}
    for competition, weights in per_competition.items():
        mass = sum(weights.values())
        if mass <= 0 or total_share <= 0:
            continue
        for key, w in weights.items():
            out[key] = out.get(key, 0.0) + shares.get(competition, 0.0) / total_share * w / mass
    total = sum(out.values())
    return {k: v / total for k, v in out.items()} if total > 0 else out


def combine(scores: Mapping[str, CompetitionScores], shares: Mapping[str, float], *,
            burn_key: str) -> dict[str, float]:
    """Weights by hotkey across competitions: each competition's weights, and its unearned share
    given to ``burn_key`` (the subnet owner's hotkey), scaled by the competition's reward share."""
    per_competition = {cid: {**s.weights, **({burn_key: s.weights.get(burn_key, 0.0) + s.unearned}
                                             if s.unearned > 0 else {})}
                       for cid, s in scores.items()}
    return split_by_share(per_competition, shares)  # type: ignore[return-value]
