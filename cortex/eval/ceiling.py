"""Brier skill on the fixed benchmark's questions, and the forecasters it is read against.

**Brier skill** = 1 − Brier / Brier of the constant 0.5 (which is 0.25 whatever happens): 0 for a coin,
above 0 for a forecaster that knows something, 1 for a perfect one. Every question counts; an answer that
does not parse forecasts nothing and counts as 0.5 (as in the leaderboard's live record), so two models
compare on the same questions and a format failure costs what a coin costs.

The reference forecasters, each on the benchmark's own questions: the constant 0.5, the training split's
base rate (per horizon), the analyst teacher fitted on the training split (what miners' SFT targets
carry), and, on the synthetic market, the oracle of its own structure
(:meth:`cortex.data.sources.synthetic.SyntheticSource.oracle_p_up`: the regime and every shock up to the
cutoff; the ceiling). The training split is rebuilt exactly as the bootstrap built it (its report's
source, seed, stride and range), so the teacher is the one genesis was pre-trained with.

The paired difference of two models' skill is read with the validators' day-clustered interval
(:func:`cortex.eval.interval.day_interval`: questions of one cutoff day share a market; lags up to the
longest horizon − 1).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from cortex.eval.interval import Interval, day_interval
from cortex.leaderboard.live import brier

COIN_BRIER = 0.25  # the Brier score of p_up = 0.5, whatever the outcome
P_RANGE = (0.02, 0.98)  # the analyst teacher's bounds: never certain
CONFIDENCE = 0.95  # one-sided, as the validators' bound


def went_up(row: Mapping[str, Any]) -> bool:
    from cortex.reward.score import outcome_of

    return outcome_of(row).went_up


def question_skill(p_up: float | None, up: bool) -> float:
    """One question's contribution to the Brier skill (its mean over questions is the skill)."""
    return 1.0 - brier(p_up, up) / COIN_BRIER


def forecasts(parts: Sequence[Mapping[str, Any]]) -> list[float | None]:
    """Each answer's parsed ``p_up`` (None where it does not parse), from ``cortex.eval``'s reward parts."""
    return [float(p["answer"]["p_up"]) if p.get("parse_error") is None and p.get("answer") else None for p in parts]


def brier_skill(forecasts: Sequence[float | None], rows: Sequence[Mapping[str, Any]]) -> float | None:
    """1 − Brier / 0.25 over every question (``None``: no parsed answer, counted as 0.5)."""
    if not rows or len(forecasts) != len(rows):
        return None
    return sum(question_skill(p, went_up(r)) for p, r in zip(forecasts, rows)) / len(rows)


def skill_difference(rows: Sequence[Mapping[str, Any]], a: Sequence[float | None], b: Sequence[float | None],
                     confidence: float = CONFIDENCE) -> Interval:
    """Brier skill of ``a`` minus ``b`` on the same questions, day-clustered (mean and one-sided bounds)."""
    if len(a) != len(rows) or len(b) != len(rows):
        raise ValueError(f"{len(rows)} questions but {len(a)} and {len(b)} forecasts")
    diffs: dict[date, list[float]] = defaultdict(list)
    for pa, pb, row in zip(a, b, rows):
        up = went_up(row)
        diffs[date.fromisoformat(str(row["cutoff"])[:10])].append(question_skill(pa, up) - question_skill(pb, up))
    lags = max((int(r["horizon_days"]) for r in rows), default=1) - 1
    return day_interval(diffs, confidence, lags)


def _training_split(data: Mapping[str, Any], assets, horizons, start, end):
    """(source, every sample, the training split) of ``data``'s source over ``assets``, ``horizons``, [start, end]."""
    from cortex.data import build_samples, split_by_time
    from cortex.data.dataset import load_frames
    from cortex.data.sources import get_source, parse_assets

    source = get_source(data["source"], seed=int(data.get("seed", 0)))
    assets = parse_assets(assets or ("BTC", "ETH", "SOL", "NEAR"))
    frames = load_frames(source, assets, start, end)
    samples = build_samples(frames, assets, horizons, start, end, stride=int(data.get("stride", 1)),
                            source=source.name, synthetic=source.is_synthetic)
    splits, _ = split_by_time(samples)
    return source, samples, splits["train"]


def _keyed(rows: Sequence[Mapping[str, Any]], samples, source) -> list:
    by_key = {(s.asset, s.cutoff, s.horizon_days): s for s in samples}
    out = []
    for r in rows:
        key = (r["asset"], str(r["cutoff"])[:10], int(r["horizon_days"]))
        if key not in by_key:
            raise ValueError(f"benchmark question {key} is not in the rebuilt dataset: was it built from {source.name}?")
        out.append(by_key[key])
    return out


def references(rows: Sequence[Mapping[str, Any]], data: Mapping[str, Any]) -> dict[str, list[float]]:
    """The reference forecasters' p_up on ``rows``: ``constant 0.5``, ``base rate``, ``analyst`` and, on the
    synthetic market, ``oracle``. ``data``: how the bootstrap built its dataset (``source``, ``seed``,
    ``stride``, ``start``, ``end``, ``assets``, ``horizons``), from which the training split is rebuilt."""
    from cortex.data.teachers import AnalystTeacher

    horizons = sorted({int(h) for h in data.get("horizons") or (1, 7)} | {int(r["horizon_days"]) for r in rows})
    source, samples, train = _training_split(data, data.get("assets"), horizons, data.get("start"), data.get("end"))
    teacher = AnalystTeacher()
    teacher.fit(train)
    rate = {h: sum(s.outcome_direction == "up" for s in train if s.horizon_days == h)
            / max(1, sum(1 for s in train if s.horizon_days == h)) for h in horizons}
    out: dict[str, list[float]] = {"constant 0.5": [0.5] * len(rows),
                                   "base rate": [rate[int(r["horizon_days"])] for r in rows],
                                   "analyst": [teacher.predict(s)[0] for s in _keyed(rows, samples, source)]}
    oracle = getattr(source, "oracle_p_up", None)
    if oracle is not None:
        out["oracle"] = [oracle(r["asset"], str(r["cutoff"])[:10], int(r["horizon_days"])) for r in rows]
    return out


def benchmark_samples(rows: Sequence[Mapping[str, Any]], data: Mapping[str, Any]) -> list:
    """The samples of ``rows`` (benchmark questions), rebuilt from ``data`` as the bootstrap built them: what a
    teacher predicts on (:func:`analyst_fitted_on`)."""
    horizons = sorted({int(h) for h in data.get("horizons") or (1, 7)} | {int(r["horizon_days"]) for r in rows})
    source, samples, _ = _training_split(data, data.get("assets"), horizons, data.get("start"), data.get("end"))
    return _keyed(rows, samples, source)


def analyst_fitted_on(questions: Sequence[Any], data: Mapping[str, Any], assets: Sequence[str],
                      start: str | None, end: str | None, horizons: Sequence[int] = (1, 7)) -> list[float]:
    """The analyst's p_up on ``questions`` (:func:`benchmark_samples`) when fitted as a miner fits it: on the
    training split of its own window (``assets``, cutoffs ``start``..``end`` of ``data``'s source: a miner's
    ``data_start``/``data_end``)."""
    from cortex.data.teachers import AnalystTeacher

    _, _, train = _training_split(data, assets, sorted({int(h) for h in horizons}), start, end)
    teacher = AnalystTeacher()
    teacher.fit(train)
    return [teacher.predict(s)[0] for s in questions]


def sharpen(p_up: float, factor: float) -> float:
    """``p_up`` moved ``factor`` times its distance from 0.5, within ``P_RANGE`` (its side unchanged)."""
    return min(P_RANGE[1], max(P_RANGE[0], 0.5 + factor * (float(p_up) - 0.5)))


def moved(p_up: Sequence[float | None], factor: float = 1.0, toward: Sequence[float] | None = None,
          share: float = 0.0) -> list[float | None]:
    """Forecasts moved after the fact: :func:`sharpen` by ``factor``, then ``share`` of the way to ``toward``
    (another forecaster's p_up); an unparsed answer stays unparsed."""
    out: list[float | None] = []
    for i, p in enumerate(p_up):
        if p is None:
            out.append(None)
            continue
        q = sharpen(p, factor)
        out.append(q + share * (float(toward[i]) - q) if toward is not None else q)
    return out


def follows(p_up: Sequence[float | None], teacher: Sequence[float]) -> dict[str, Any]:
    """How a forecaster's ``p_up`` follows a teacher's on the same questions (an unparsed answer as 0.5):
    ``corr`` (Pearson: does it rank the questions as the teacher does), ``slope`` (least squares of ``p_up`` on
    the teacher's: 1 at the teacher's scale, 0.3 for a genesis pre-trained 0.3 of the way from the base rate),
    ``mean`` (its lean) and ``values`` (how many distinct forecasts it writes). ``corr`` is None where either
    side is constant, ``slope`` where the teacher is. A student that learned its teacher's reading has ``corr`` up and ``slope``
    towards 1; one that learned a lean moves ``mean`` and ``slope`` with ``corr`` flat or down."""
    import numpy as np

    if len(p_up) != len(teacher) or not len(teacher):
        raise ValueError(f"{len(p_up)} forecasts against {len(teacher)} of the teacher")
    p = np.array([0.5 if x is None else float(x) for x in p_up])
    t = np.array([float(x) for x in teacher])
    spread_p, spread_t = float(p.std()), float(t.std())
    corr = float(np.corrcoef(p, t)[0, 1]) if spread_p > 1e-12 and spread_t > 1e-12 else None
    slope = float(np.cov(p, t, bias=True)[0, 1] / spread_t ** 2) if spread_t > 1e-12 else None
    return {"corr": corr, "slope": slope, "mean": float(p.mean()), "values": len({round(x, 4) for x in p})}


def bootstrap_data(report: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset recipe of a bootstrap report (``bootstrap.json``), as :func:`references` reads it."""
    config, data = report.get("config", {}), report.get("data", {})
    return {"source": config.get("source", "synthetic"), "seed": config.get("seed", 0),
            "stride": config.get("stride", 1), "start": config.get("start"), "end": config.get("end"),
            "assets": data.get("assets"), "horizons": data.get("horizons")}
