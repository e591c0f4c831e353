"""The base's live track record (DESIGN.md §13): how well each base forecast the live questions it answered
while it was current, against the constant 0.5 forecast and the analyst heuristic.

Validators ledger the base's greedy answer to every live question and its reward once the outcome
resolves (``cortex.protocol.ledger.LedgerEntry``, model key ``repo@revision`` of the base). Pure functions
here turn those entries, the questions' outcomes and the analyst's probabilities into, per window of the
last 30 and 90 days:

- ``brier``: mean of (p_up − went_up)², an answer that does not parse counted as 0.5 (no information);
- ``accuracy``: the share of questions whose direction (p_up ≥ 0.5 is up, as the answer format says) was
  right, an unparsed answer counted as wrong; ``parse_rate``; ``reward``: the mean of the daily mean rewards;
- ``calibration``: per bin of p_up (parsed answers), the mean forecast and how often the asset went up;
- ``versus``: per baseline, its own Brier and accuracy on the same questions and the day-clustered interval
  of (baseline's Brier − the base's) per question (``cortex.eval.interval.day_interval``, the validators'
  own: positive means the base forecast better), with lags up to the longest horizon − 1 day.

The validators' ledgers keep their scoring window only (they prune older answers), so a window longer
than the competition's ``scoring.window_days`` holds what the ledgers still have: ``days`` says how many.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from cortex.eval.interval import day_interval
from cortex.protocol.ledger import LedgerEntry

WINDOWS = (30, 90)  # days
CALIBRATION_BINS = 5
CONFIDENCE = 0.9
CONSTANT = "constant_0.5"
ANALYST = "analyst"


@dataclass(frozen=True)
class Resolved:
    """One live question a base answered, with its outcome (and the analyst's forecast of it)."""

    question: str
    day: date  # the question's cutoff day
    horizon_days: int
    p_up: float | None  # the base's; None when its answer did not parse
    reward: float
    went_up: bool
    analyst: float | None = None  # the analyst heuristic's p_up; None when it could not be computed


def resolved_answers(entries: Iterable[LedgerEntry], model: str, outcomes: Mapping[str, bool],
                     analyst: Mapping[str, float] | None = None) -> list[Resolved]:
    """``model``'s scored answers whose outcome is in ``outcomes`` (question id → went up), oldest first."""
    analyst = analyst or {}
    out, seen = [], set()
    for e in entries:
        if e.model != model or e.reward is None or e.question not in outcomes or e.question in seen:
            continue
        seen.add(e.question)
        answer = e.parts.get("answer") if isinstance(e.parts, dict) else None
        p_up = answer.get("p_up") if isinstance(answer, dict) else None
        p_up = float(p_up) if isinstance(p_up, (int, float)) and not isinstance(p_up, bool) and 0 <= p_up <= 1 else None
        out.append(Resolved(e.question, date.fromisoformat(e.cutoff), e.horizon_days, p_up, float(e.reward),
                            bool(outcomes[e.question]), analyst.get(e.question)))
    return sorted(out, key=lambda r: (r.day, r.question))


def brier(p_up: float | None, went_up: bool) -> float:
    p = 0.5 if p_up is None else p_up
    return (p - float(went_up)) ** 2


def hit(p_up: float | None, went_up: bool) -> bool:
    return p_up is not None and (p_up >= 0.5) == went_up


def calibration(pairs: Sequence[tuple[float, bool]], bins: int = CALIBRATION_BINS) -> list[dict[str, Any]]:
    """Per equal-width bin of the forecast, its count, mean forecast and observed frequency of up (empty bins left out)."""
    groups: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    for p, up in pairs:
        groups[min(int(p * bins), bins - 1)].append((p, up))
    return [{"low": k / bins, "high": (k + 1) / bins, "n": len(g), "mean_p": sum(p for p, _ in g) / len(g),
             "frequency_up": sum(up for _, up in g) / len(g)} for k, g in sorted(groups.items())]


def _daily_mean(values: Sequence[tuple[date, float]]) -> float | None:
    days: dict[date, list[float]] = defaultdict(list)
    for d, v in values:
        days[d].append(v)
    return sum(sum(v) / len(v) for v in days.values()) / len(days) if days else None


def _forecaster(answers: Sequence[Resolved], p_of: Callable[[Resolved], float | None]) -> dict[str, Any]:
    n = len(answers)
    return {"brier": sum(brier(p_of(r), r.went_up) for r in answers) / n,
            "accuracy": sum(hit(p_of(r), r.went_up) for r in answers) / n}


def window_record(answers: Sequence[Resolved], *, as_of: date, days: int,
                  confidence: float = CONFIDENCE) -> dict[str, Any] | None:
    """The record over the ``days`` days up to ``as_of`` (by question day); None when it holds no answer."""
    start = as_of - timedelta(days=days - 1)
    window = [r for r in answers if start <= r.day <= as_of]
    if not window:
        return None
    lags = max(r.horizon_days for r in window) - 1
    parsed = [r for r in window if r.p_up is not None]
    record = {"from": min(r.day for r in window).isoformat(), "to": max(r.day for r in window).isoformat(),
              "questions": len(window), "days": len({r.day for r in window}),
              "parse_rate": len(parsed) / len(window), **_forecaster(window, lambda r: r.p_up),
              "reward": _daily_mean([(r.day, r.reward) for r in window]),
              "calibration": calibration([(r.p_up, r.went_up) for r in parsed]), "versus": {}}
    baselines: dict[str, Callable[[Resolved], float | None]] = {CONSTANT: lambda r: 0.5, ANALYST: lambda r: r.analyst}
    for name, p_of in baselines.items():
        same = [r for r in window if name == CONSTANT or r.analyst is not None]
        if not same:
            record["versus"][name] = None
            continue
        diffs: dict[date, list[float]] = defaultdict(list)
        for r in same:
            diffs[r.day].append(brier(p_of(r), r.went_up) - brier(r.p_up, r.went_up))
        iv = day_interval(diffs, confidence, lags)
        record["versus"][name] = {**_forecaster(same, p_of), "questions": len(same),
                                  "brier_gain": iv.mean, "brier_gain_low": iv.low, "brier_gain_high": iv.high,
                                  "days": iv.days, "confidence": confidence}
    return record


def base_records(entries: Sequence[LedgerEntry], bases: Sequence[str], outcomes: Mapping[str, bool],
                 analyst: Mapping[str, float] | None = None, *, windows: Sequence[int] = WINDOWS) -> list[dict[str, Any]]:
    """Per base (``bases``: model keys, oldest first; the last is the current one) that answered anything,
    its record over each window ending on the last day it answered (the newest resolved day for the current
    base): the same numbers for every base, each over the days it was current."""
    out = []
    for key in bases:
        answers = resolved_answers(entries, key, outcomes, analyst)
        if not answers:
            continue
        last = max(r.day for r in answers)
        out.append({"model": key, "current": key == bases[-1], "first_day": answers[0].day.isoformat(),
                    "last_day": last.isoformat(),
                    "windows": {str(d): window_record(answers, as_of=last, days=d) for d in windows}})
    return out
