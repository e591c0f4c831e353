"""Backtest of direction forecasts against realised outcomes (``cortex eval backtest``).

Pure functions over plain rows, so every number can be checked by hand:

- hit rate: share of rows where ``p_up > 0.5`` agrees with the realised direction;
- Brier score: mean of (p_up − y)², next to two references: 0.25 (always 0.5) and the split's
  own base rate b(1 − b) (in-sample, so a bound no forecaster could know in advance);
- calibration: equal-width reliability bins and the expected calibration error
  ECE = Σ_b (n_b / N) · |mean p_up in b − share up in b|;
- a long/flat strategy (long when p_up > 0.5, otherwise in cash at 0%, no costs) against
  buy-and-hold over the same periods: total return Π(1 + r) − 1 and the annualised Sharpe ratio
  mean(r) / std(r) · sqrt(365 / h) (std with n − 1; crypto trades every day).

Overlapping horizons: a dataset has a sample every day, but a position held for h days cannot be
renewed daily. For each horizon the backtest walks the cutoff days in order and keeps a day only
if it is at least h days after the last kept one, so the kept periods tile time without overlap
and compound honestly. For "ALL" the kept days come from the union of all assets' days and each
period's return is the equal-weight mean over the assets that have that day.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

PERIODS_PER_YEAR_DAYS = 365.0


@dataclass(frozen=True)
class Row:
    """One forecast joined to its outcome."""

    asset: str
    cutoff: str  # ISO day
    horizon_days: int
    p_up: float
    outcome_return: float  # fraction
    went_up: bool


def hit_rate(rows: list[Row]) -> float | None:
    if not rows:
        return None
    return sum((r.p_up > 0.5) == r.went_up for r in rows) / len(rows)


def brier(rows: list[Row]) -> float | None:
    if not rows:
        return None
    return sum((r.p_up - (1.0 if r.went_up else 0.0)) ** 2 for r in rows) / len(rows)


def base_rate(rows: list[Row]) -> float | None:
    return sum(r.went_up for r in rows) / len(rows) if rows else None


def calibration(rows: list[Row], bins: int = 10) -> tuple[list[dict[str, Any]], float | None]:
    """Reliability bins [k/bins, (k+1)/bins) (the last one closed) and the ECE."""
    groups: list[list[Row]] = [[] for _ in range(bins)]
    for r in rows:
        groups[min(int(r.p_up * bins), bins - 1)].append(r)
    table = []
    ece = 0.0
    for k, group in enumerate(groups):
        entry: dict[str, Any] = {"lo": k / bins, "hi": (k + 1) / bins, "n": len(group),
                                 "mean_p": None, "share_up": None}
        if group:
            mean_p = sum(r.p_up for r in group) / len(group)
            share = sum(r.went_up for r in group) / len(group)
            entry.update(mean_p=mean_p, share_up=share)
            ece += len(group) / len(rows) * abs(mean_p - share)
        table.append(entry)
    return table, (ece if rows else None)


def non_overlapping_days(days: Iterable[str], horizon: int) -> list[str]:
    """Greedy from the earliest: keep a day only if it is >= horizon days after the last kept."""
    kept: list[str] = []
    last: date | None = None
    for day in sorted(set(days)):
        d = date.fromisoformat(day)
        if last is None or (d - last).days >= horizon:
            kept.append(day)
            last = d
    return kept


def performance(returns: list[float], horizon: int) -> dict[str, Any]:
    """Total compounded return and annualised Sharpe (None with < 2 periods or zero spread)."""
    total = 1.0
    for r in returns:
        total *= 1.0 + r
    sharpe = None
    if len(returns) >= 2:
        mean = sum(returns) / len(returns)
        var = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
        if var > 0:
            sharpe = mean / math.sqrt(var) * math.sqrt(PERIODS_PER_YEAR_DAYS / horizon)
    return {"periods": len(returns), "total_return": total - 1.0, "sharpe": sharpe}


def strategy(rows: list[Row], horizon: int) -> dict[str, dict[str, Any]]:
    """Long/flat and buy-and-hold over the non-overlapping periods of rows of one horizon."""
    by_day: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        if r.horizon_days == horizon:
            by_day[r.cutoff].append(r)
    long_flat, hold = [], []
    for day in non_overlapping_days(by_day, horizon):
        group = by_day[day]
        long_flat.append(sum(r.outcome_return if r.p_up > 0.5 else 0.0 for r in group) / len(group))
        hold.append(sum(r.outcome_return for r in group) / len(group))
    return {"strategy": performance(long_flat, horizon), "buy_and_hold": performance(hold, horizon)}


def summarise(rows: list[Row], horizon: int | None, bins: int = 10) -> dict[str, Any]:
    """All metrics for one group of rows (one horizon, or all horizons when ``horizon`` is None)."""
    table, ece = calibration(rows, bins)
    b = base_rate(rows)
    out: dict[str, Any] = {
        "n": len(rows), "hit_rate": hit_rate(rows), "brier": brier(rows),
        "brier_constant_half": 0.25 if rows else None,
        "brier_base_rate": b * (1 - b) if b is not None else None,
        "base_rate_up": b, "ece": ece, "calibration": table,
    }
    if horizon is not None:
        out.update(strategy(rows, horizon))
    return out


def backtest(rows: list[Row], bins: int = 10) -> dict[str, Any]:
    """Metrics per (asset, horizon), per horizon over all assets ("ALL"), and overall."""
    groups = []
    for h in sorted({r.horizon_days for r in rows}):
        of_h = [r for r in rows if r.horizon_days == h]
        for asset in sorted({r.asset for r in of_h}):
            groups.append({"asset": asset, "horizon_days": h,
                           **summarise([r for r in of_h if r.asset == asset], h, bins)})
        groups.append({"asset": "ALL", "horizon_days": h, **summarise(of_h, h, bins)})
    return {"groups": groups, "overall": summarise(rows, None, bins)}


def _fmt(x: Any, pct: bool = False) -> str:
    if x is None:
        return "—"
    return f"{100 * x:+.1f}%" if pct else f"{x:.3f}"


def format_table(report: Mapping[str, Any]) -> str:
    """The report as a fixed-width text table, one line per group, then the overall line."""
    head = (f"{'asset':<6} {'h':>3} {'n':>6} {'hit':>6} {'brier':>6} {'ece':>6} "
            f"{'strat':>9} {'sharpe':>7} {'hold':>9} {'sharpe':>7} {'periods':>7}")
    lines = [head, "-" * len(head)]
    for g in report["groups"]:
        s, h = g["strategy"], g["buy_and_hold"]
        lines.append(
            f"{g['asset']:<6} {g['horizon_days']:>3} {g['n']:>6} {_fmt(g['hit_rate']):>6} "
            f"{_fmt(g['brier']):>6} {_fmt(g['ece']):>6} {_fmt(s['total_return'], True):>9} "
            f"{_fmt(s['sharpe']):>7} {_fmt(h['total_return'], True):>9} {_fmt(h['sharpe']):>7} "
            f"{s['periods']:>7}")
    o = report["overall"]
    lines.append(f"{'ALL':<6} {'all':>3} {o['n']:>6} {_fmt(o['hit_rate']):>6} "
                 f"{_fmt(o['brier']):>6} {_fmt(o['ece']):>6}")
    lines.append("strategy: long when p_up > 0.5, else flat; non-overlapping h-day periods; no costs")
    lines.append(f"Brier references: always 0.5 = 0.250; in-sample base rate "
                 f"{_fmt(o['base_rate_up'])} = {_fmt(o['brier_base_rate'])}")
    return "\n".join(lines)


# ---------------------------------------------------------------- joining forecasts to outcomes

def _day(value: Any) -> str:
    """An ISO day from a string, date or datetime (the first 10 characters of its ISO form)."""
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text[:10]


def _key(item: Mapping[str, Any]) -> tuple[str, str, int]:
    return str(item["asset"]).upper(), _day(item["cutoff"]), int(item["horizon_days"])


def prediction_p_up(pred: Mapping[str, Any], asset: str, horizon: int) -> tuple[float | None, str]:
    """A prediction's p_up: given directly, or parsed from ``completion`` with the reward's
    strict parser (so a backtest and the reward agree on what counts as an answer)."""
    from cortex.reward import RewardConfig, parse_completion

    if "completion" in pred and pred.get("p_up") is None:
        parsed = parse_completion(pred["completion"], asset, horizon, RewardConfig())
        if parsed.error is not None or parsed.answer is None:
            return None, f"unparseable completion: {parsed.error}"
        return parsed.answer["p_up"], ""
    p = pred.get("p_up")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) \
            or not 0.0 <= p <= 1.0:
        return None, f"p_up {p!r} is not a number in [0, 1]"
    return float(p), ""


def join(samples: Iterable[Mapping[str, Any]], predictions: Iterable[Mapping[str, Any]]
         ) -> tuple[list[Row], dict[str, int]]:
    """Match predictions to samples on (asset, cutoff day, horizon_days).

    Returns the joined rows and counts: samples, matched, missing (samples without a usable
    prediction), invalid (unparseable or out of range), unmatched (predictions for no sample),
    duplicates (later predictions for a key already seen; the first one counts).
    """
    outcomes: dict[tuple[str, str, int], Mapping[str, Any]] = {}
    for s in samples:
        outcomes[_key(s)] = s
    counts = {"samples": len(outcomes), "matched": 0, "missing": 0, "invalid": 0,
              "unmatched": 0, "duplicates": 0}
    seen: set[tuple[str, str, int]] = set()
    rows: list[Row] = []
    for pred in predictions:
        try:
            key = _key(pred)
        except (KeyError, TypeError, ValueError):
            counts["invalid"] += 1
            continue
        if key not in outcomes:
            counts["unmatched"] += 1
            continue
        if key in seen:
            counts["duplicates"] += 1
            continue
        seen.add(key)
        p_up, _why = prediction_p_up(pred, key[0], key[2])
        if p_up is None:
            counts["invalid"] += 1
            continue
        s = outcomes[key]
        ret = float(s["outcome_return"])
        direction = s.get("outcome_direction")
        went_up = direction == "up" if direction in ("up", "down") else ret > 0
        rows.append(Row(key[0], key[1], key[2], p_up, ret, went_up))
    counts["matched"] = len(rows)
    counts["missing"] = counts["samples"] - len(rows)
    rows.sort(key=lambda r: (r.horizon_days, r.asset, r.cutoff))
    return rows, counts
