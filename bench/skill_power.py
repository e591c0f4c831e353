"""Does the scoring pay for forecasting skill? Planted forecasters of known skill, scored every market day.

Each planted forecaster f sees, per question q, a signal z = ρ·u + √(1−ρ²)·e, where u is the
realised log return over the horizon divided by the sample's realised volatility (the RMS daily
log return of the 30 days up to the cutoff, times √horizon: known at the cutoff) and e is its own
standard normal noise, drawn from sha256(f, q) (deterministic). It answers the calibrated
p_up = Φ(ρ·z/√(1−ρ²)) and return_pct = ρ·z·vol·√h·100, with the same reasoning text as everyone,
ρ ∈ {0, 0.03, 0.06, 0.1, 0.15, 0.25}. The base answers what knows nothing: p_up 0.5, return_pct 0
(the ρ = 0 forecaster answers exactly that too: matching the base must earn nothing). A later copy
of the best (ρ = 0.25) commits ``--copy-after`` days after the others and answers what it answers.

Every answer is written in the answer format and scored with the project's reward (cortex.reward);
the questions of each day are the validator's (validator.questions.day_questions, the competition's
per-day cap); the entries go through the validator's scoring (validator.scoring.score_competition,
then combine) once per market day from ``--start`` to ``--end``, each weight vector counted as that
day's emission. The same answers also go through the scoring before issue 12 (bench/legacy_winrate.py:
one round per day of ``prompts_per_round`` resolved questions from the last ``eval_window_days``,
win rates with the earlier-commit epsilon, softmax, smoothing), side by side.

Prints per forecaster its true Brier skill (1 − Brier / Brier of p_up 0.5 over all its answers)
and both emission shares, then ``spearman=<x> zero_skill_share=<y> copy_share=<z>`` (new scoring;
Spearman between ρ and emission share over the six planted forecasters).
Run: .venv/bin/python bench/skill_power.py [--market DIR] [--competition cortex-70b]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import legacy_winrate as legacy  # noqa: E402
from cortex.data.samples import make_sample  # noqa: E402
from cortex.data.sources.csvdir import CsvSource  # noqa: E402
from cortex.data.sources.synthetic import SyntheticSource  # noqa: E402
from cortex.protocol.competition import Competition, find_competition  # noqa: E402
from cortex.protocol.ledger import LedgerEntry  # noqa: E402
from cortex.reward import score  # noqa: E402
from validator.questions import day_questions  # noqa: E402
from validator.scoring import Contender, combine, score_competition  # noqa: E402

RHOS = (0.0, 0.03, 0.06, 0.1, 0.15, 0.25)
BASE_KEY = "bench/base@0"
OWNER = "owner"  # where burned emission goes
BLOCKS_PER_DAY = 7_200
HISTORY_DAYS = 130  # the prompt's features need MIN_HISTORY days before the first cutoff
REASONING = ("The recent daily table shows mixed momentum across windows, volume is close to its usual "
             "level and the taker flow is balanced. Realised volatility sets the scale of the move, the "
             "drawdown is moderate and strength against the market is unremarkable, so the signal I read "
             "is weak and the probability stays near even odds with a small tilt from my private model.")
PHI = NormalDist()


@dataclass(frozen=True)
class Forecaster:
    name: str
    rho: float
    noise: str  # whose noise e it draws (a copy draws the original's)
    commit_day: date


def _noise(who: str, question: str) -> float:
    seed = int.from_bytes(hashlib.sha256(f"{who}|{question}".encode()).digest()[:8], "big")
    return float(np.random.default_rng(seed).standard_normal())


def answer(f: Forecaster | None, sample, question: str) -> str:
    """The completion of forecaster ``f`` (None: the base) for one sample, in the answer format."""
    p_up, ret = 0.5, 0.0
    if f is not None and f.rho > 0:
        u = math.log1p(sample.outcome_return) / sample.realized_vol
        z = f.rho * u + math.sqrt(1 - f.rho**2) * _noise(f.noise, question)
        p_up = PHI.cdf(f.rho * z / math.sqrt(1 - f.rho**2))
        ret = f.rho * z * sample.realized_vol * 100.0  # realized_vol already carries the √h
    body = {"asset": sample.asset, "horizon_days": sample.horizon_days, "direction": "up" if p_up >= 0.5 else "down",
            "p_up": round(p_up, 6), "return_pct": round(ret, 6)}
    return f"<think>{REASONING}</think><answer>{json.dumps(body)}</answer>"


def load_frames(market: str | None, assets: list[str], start: date, end: date, horizon: int) -> tuple[dict, str]:
    source = CsvSource(market) if market else SyntheticSource(seed=0)
    if market:
        missing = sorted(set(assets) - set(source.available()))
        assets = [a for a in assets if a not in missing]
        if missing:
            print(f"not in {market}: {', '.join(missing)} (left out)")
    frames = source.load(assets, (start - timedelta(days=HISTORY_DAYS)).isoformat(),
                         (end + timedelta(days=horizon)).isoformat())
    return frames, source.name if hasattr(source, "name") else str(market)


def build_ledger(comp: Competition, frames: dict, forecasters: list[Forecaster], start: date, end: date
                 ) -> tuple[dict[date, list[LedgerEntry]], dict[str, list[float]]]:
    """Entries by question day for the base and every forecaster, and each one's Brier scores."""
    by_day: dict[date, list[LedgerEntry]] = defaultdict(list)
    brier: dict[str, list[float]] = defaultdict(list)
    day = start
    while day <= end:
        for q in day_questions(comp, day):
            if q.asset not in frames or pd.Timestamp(q.resolves) not in frames[q.asset].index:
                continue
            sample = make_sample(frames, q.asset, q.cutoff, q.horizon_days)
            row = sample.row()
            for f in [None, *forecasters]:
                if f is not None and f.commit_day >= day:
                    continue  # committed after the day closed: not eligible
                b = score(answer(f, sample, q.id), row, comp.reward)
                key = f.name if f else BASE_KEY
                by_day[day].append(LedgerEntry(model=key, question=q.id, competition=comp.id, asset=q.asset,
                                               cutoff=q.cutoff, horizon_days=q.horizon_days, reward=b.total))
                brier[key].append(1.0 - b.direction_score)
        day += timedelta(days=1)
    return by_day, brier


def new_scoring(comp: Competition, by_day: dict[date, list[LedgerEntry]], contenders: list[Contender],
                start: date, end: date) -> dict[str, float]:
    """Emission per hotkey (and OWNER) summed over one scoring per market day."""
    emission: dict[str, float] = defaultdict(float)
    window = comp.scoring.window_days
    day = start
    while day <= end:
        entries = [e for k in range(window) for e in by_day.get(day - timedelta(days=k), [])]
        scores = score_competition(entries, contenders, BASE_KEY, comp.scoring, as_of=day.isoformat(),
                                   competition=comp.id)
        for hotkey, w in combine({comp.id: scores}, {comp.id: 1.0}, burn_key=OWNER).items():
            emission[hotkey] += w
        day += timedelta(days=1)
    return emission


def old_scoring(comp: Competition, by_day: dict[date, list[LedgerEntry]], forecasters: list[Forecaster],
                start: date, end: date, temperature: float = 0.05, alpha: float = 0.5) -> dict[str, float]:
    """The same answers through the scoring before issue 12: one round per market day."""
    epsilon = legacy.Epsilon()
    origin = start - timedelta(days=1)
    emission: dict[str, float] = defaultdict(float)
    smoothed: dict = {}
    day = start
    while day <= end:
        rewards: dict[str, dict[str, float]] = defaultdict(dict)
        for k in range(comp.eval.eval_window_days):
            for e in by_day.get(day - timedelta(days=k), []):
                if date.fromisoformat(e.cutoff) + timedelta(days=e.horizon_days) <= day:
                    rewards[e.model][e.question] = e.reward
        block = (day - origin).days * BLOCKS_PER_DAY
        # every model answers the round's prompts; a model committed later answers them too (old design)
        pool = sorted(rewards[BASE_KEY])
        if pool:
            seed = int.from_bytes(hashlib.sha256(f"{comp.id}:{day}".encode()).digest()[:8], "big")
            take = sorted(np.random.default_rng(seed).choice(len(pool), min(comp.eval.prompts_per_round, len(pool)),
                                                             replace=False))
            prompts = [pool[i] for i in take]
            entries = [legacy.Entry(legacy.BASE, None, np.array([rewards[BASE_KEY][q] for q in prompts]))]
            for f in forecasters:
                source = f.noise  # a copy's answers are its original's
                if f.commit_day >= day:
                    continue
                block_f = (f.commit_day - origin).days * BLOCKS_PER_DAY
                entries.append(legacy.Entry(f.name, block_f, np.array([rewards[source][q] for q in prompts])))
            smoothed = legacy.round_weights(entries, epsilon, block, temperature, smoothed, alpha)
            total = sum(smoothed.values())
            for key, w in smoothed.items():
                emission[key] += w / total if total > 0 else 0.0
        day += timedelta(days=1)
    return emission


def spearman(a: pd.Series, b: pd.Series) -> float:
    """Pearson correlation of average ranks (pandas' own method="spearman" needs SciPy, not a dependency);
    0 when either side is constant."""
    value = a.rank().corr(b.rank())
    return 0.0 if math.isnan(value) else float(value)


def run(comp: Competition, frames: dict, start: date, end: date, copy_after: int = 30) -> dict:
    first = start - timedelta(days=1)
    forecasters = [Forecaster(f"rho={r:g}", r, f"rho={r:g}", first) for r in RHOS]
    best = forecasters[-1]
    forecasters.append(Forecaster("copy", best.rho, best.noise, start + timedelta(days=copy_after)))
    contenders = [Contender(f.name, f.name, i + 1, (f.commit_day - first).days * BLOCKS_PER_DAY,
                            f.commit_day.isoformat()) for i, f in enumerate(forecasters)]
    by_day, brier = build_ledger(comp, frames, forecasters, start, end)
    new = new_scoring(comp, by_day, contenders, start, end)
    old = old_scoring(comp, by_day, forecasters, start, end)
    base_brier = float(np.mean(brier[BASE_KEY]))
    total_new, total_old = sum(new.values()), sum(old.values())
    rows = [{"name": f.name, "rho": f.rho, "brier_skill": 1.0 - float(np.mean(brier[f.name])) / base_brier,
             "share": new.get(f.name, 0.0) / total_new, "old_share": old.get(f.name, 0.0) / total_old}
            for f in forecasters]
    planted = rows[: len(RHOS)]
    rho = pd.Series([r["rho"] for r in planted])
    return {"rows": rows, "burned": new.get(OWNER, 0.0) / total_new,
            "questions": sum(len(v) for v in by_day.values()) // (len(forecasters) + 1),
            "spearman": spearman(rho, pd.Series([r["share"] for r in planted])),
            "old_spearman": spearman(rho, pd.Series([r["old_share"] for r in planted])),
            "zero_skill_share": planted[0]["share"], "copy_share": rows[-1]["share"],
            "original_share": planted[-1]["share"]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--market", help="directory of Binance-kline CSVs (default: the synthetic market)")
    p.add_argument("--start", default="2024-01-01", help="first question day and first scoring day")
    p.add_argument("--end", default="2024-06-30", help="last scoring day")
    p.add_argument("--assets", help="comma-separated (default: the competition's)")
    p.add_argument("--competition", default="cortex-70b", help="built-in id or a YAML/JSON definitions file")
    p.add_argument("--copy-after", type=int, default=30, help="days after --start the copy commits")
    args = p.parse_args(argv)
    comp = find_competition(args.competition)
    start, end = date.fromisoformat(args.start), date.fromisoformat(args.end)
    assets = args.assets.split(",") if args.assets else list(comp.eval.assets)
    began = time.perf_counter()
    frames, name = load_frames(args.market, assets, start, end, max(comp.eval.horizons_days))
    comp = _with_assets(comp, [a for a in assets if a in frames])
    result = run(comp, frames, start, end, args.copy_after)
    print(f"market {name}, {comp.id}, {len(frames)} assets, horizons {list(comp.eval.horizons_days)}, "
          f"{result['questions']} questions, {(end - start).days + 1} scoring days, "
          f"window {comp.scoring.window_days} days, {time.perf_counter() - began:.0f} s")
    print(f"{'forecaster':<12}{'rho':>6}{'brier_skill':>13}{'share':>9}{'old_share':>11}")
    for r in result["rows"]:
        print(f"{r['name']:<12}{r['rho']:>6.2f}{r['brier_skill']:>+13.4%}{r['share']:>9.4f}{r['old_share']:>11.4f}")
    print(f"burned (unearned, to the owner) {result['burned']:.4f}; old scoring: spearman={result['old_spearman']:.3f}")
    print(f"spearman={result['spearman']:.3f} zero_skill_share={result['zero_skill_share']:.4f} "
          f"copy_share={result['copy_share']:.4f}")


def _with_assets(comp: Competition, assets: list[str]) -> Competition:
    import dataclasses

    return dataclasses.replace(comp, eval=dataclasses.replace(comp.eval, assets=tuple(assets)))


if __name__ == "__main__":
    main()
