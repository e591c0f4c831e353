"""``analyst``: an offline, deterministic teacher.

It fits, per horizon, a logistic regression for P(up) and a ridge regression for the
volatility-scaled return on the training split only, then writes step-by-step reasoning from
the sample's features. Its forecasts are calibrated where it has skill: per horizon, a model fitted
on the first three quarters of the training split (in time) must beat that part's base rate on the
last quarter (Brier score), or the horizon's p_up is the training base rate and its return the base
rate's side (``describe()`` reports both Brier scores and the decision). Every number it cites is copied from the prompt as the prompt prints it,
and its conclusion always agrees with the answer.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from cortex.data import features as F
from cortex.data import prompts as P
from cortex.data.samples import Sample
from cortex.data.teachers import model as M
from cortex.data.teachers.base import TeacherError


class AnalystTeacher:
    """``words=True`` (teacher ``analyst-words``) writes the same steps and conclusion with each of the
    prompt's numbers replaced by its direction: a small model that cannot yet copy numbers exactly
    learns from it to reason without inventing any (the reward's unsupported-number penalty).

    ``blind=True`` (``analyst-blind``, ``analyst-words-blind``) reads the same features but forecasts every
    horizon's training base rate, as the uninformed branch does: traces in the answer format that carry
    no market skill. ``blind`` may also name horizons (``blind=(7,)``, named ``analyst-blind7``): those
    forecast the base rate, the others are informed (the tiny base's pre-training, docs/base-model.md).
    ``strength`` below 1 moves each informed forecast only that share of the way from the base rate (and
    its return and weighed contributions with it): the same reading of the market, less sure of it."""

    def __init__(self, l2: float = 10.0, max_z: float = 1.0, words: bool = False,
                 blind: bool | Sequence[int] = False, strength: float = 1.0):
        if not 0.0 <= strength <= 1.0:
            raise TeacherError(f"analyst: strength is a share in [0, 1], got {strength}")
        self.l2, self.max_z, self.words, self.strength = l2, max_z, words, float(strength)
        self.blind: bool | tuple[int, ...] = blind if isinstance(blind, bool) else tuple(sorted({int(h) for h in blind}))
        suffix = "" if not self.blind else "-blind" if self.blind is True else "-blind" + "+".join(map(str, self.blind))
        self.name = ("analyst-words" if words else "analyst") + suffix + (f"@{strength:g}" if strength != 1.0 else "")
        self.models: dict[int, dict] = {}
        self.fit_window: tuple[str, str] | None = None

    def fit(self, train: Sequence[Sample]) -> None:
        """Fit on samples with known outcomes (the training split: never validation or test)."""
        train = [s for s in train if s.known]
        if len(train) < 30:
            raise TeacherError(f"analyst: {len(train)} training samples with outcomes; need at least 30")
        self.fit_window = (min(s.cutoff for s in train), max(s.cutoff for s in train))
        groups = {h: [s for s in train if s.horizon_days == h] for h in sorted({s.horizon_days for s in train})}
        groups[0] = train  # pooled fallback for horizons not seen in training
        for h, group in groups.items():
            group = sorted(group, key=lambda s: s.cutoff)
            x = np.stack([M.inputs(s.features) for s in group])
            up = np.array([s.outcome_direction == "up" for s in group], dtype=float)
            z = np.array([s.outcome_return / max(s.realized_vol, 1e-6) for s in group])
            check = self._skill_check(x, up)
            std = M.Standardiser.fit(x)
            xs = std(x)
            self.models[h] = {
                "std": std, "n": len(group), "base_rate": float(up.mean()), **check,
                "logit": M.fit_logistic(xs, up, self.l2), "ridge": M.fit_ridge(xs, np.clip(z, -3, 3), self.l2),
            }

    def _skill_check(self, x: np.ndarray, up: np.ndarray) -> dict:
        """Fit on the first three quarters (in time), score on the last: does the model beat the base rate?"""
        cut = (3 * len(up)) // 4
        if cut < 20 or len(up) - cut < 10:
            return {"informed": False, "check_brier": None, "check_base_brier": None}
        std = M.Standardiser.fit(x[:cut])
        p = M.sigmoid(std(x[cut:]) @ M.fit_logistic(std(x[:cut]), up[:cut], self.l2))
        model, base = float(np.mean((p - up[cut:]) ** 2)), float(np.mean((up[:cut].mean() - up[cut:]) ** 2))
        return {"informed": model < base, "check_brier": model, "check_base_brier": base}

    def predict(self, sample: Sample) -> tuple[float, float, np.ndarray]:
        """(p_up, return_pct, per-input contributions to the logit) for one sample."""
        if not self.models:
            raise TeacherError("analyst: call fit() on the training split first")
        m = self.models.get(sample.horizon_days, self.models[0])
        xs = m["std"](M.inputs(sample.features)[None, :])[0]
        blind = self.blind is True or (self.blind and sample.horizon_days in self.blind)
        if blind or not m["informed"]:  # no skill out of sample (or blind): the base rate, nothing to weigh
            p_up = float(np.clip(m["base_rate"], 0.02, 0.98))
            return p_up, (2 * round(p_up, 2) - 1) * 0.8 * sample.realized_vol * 100.0, np.zeros(len(xs) - 1)
        k = self.strength  # below 1: the forecast moved only that share of the way from the base rate
        contrib = k * m["logit"][1:] * xs[1:]
        p_up = float(np.clip(m["base_rate"] + k * (M.sigmoid(xs @ m["logit"]) - m["base_rate"]), 0.02, 0.98))
        z = k * float(np.clip(xs @ m["ridge"], -self.max_z, self.max_z))
        ret = z * sample.realized_vol * 100.0
        p_r = round(p_up, 2)
        if (p_r >= 0.5) != (ret >= 0) and round(ret, 2) != 0:
            ret = (2 * p_r - 1) * 0.8 * sample.realized_vol * 100.0  # agree with p_up's side
        return p_up, ret, contrib

    def complete(self, samples: Sequence[Sample], progress: bool = False) -> list[str | None]:
        from tqdm.auto import tqdm

        write = reasoning_words if self.words else reasoning
        out = []
        for s in tqdm(samples, desc=self.name, unit="trace", disable=not progress):
            p_up, ret, contrib = self.predict(s)
            answer = P.format_answer(s.asset, s.horizon_days, p_up, ret)
            out.append(P.completion(write(s, p_up, contrib), answer))
        return out

    def describe(self) -> dict:
        return {
            "name": self.name,
            "blind": list(self.blind) if isinstance(self.blind, tuple) else self.blind,
            "strength": self.strength,
            "model": "per-horizon L2 logistic regression (IRLS) for p_up, ridge for return/realized_vol",
            "inputs": list(M.INPUTS),
            "fit_window": list(self.fit_window) if self.fit_window else None,
            "horizons": {str(h): {"n": m["n"], "base_rate": round(m["base_rate"], 4), "informed": m["informed"],
                                  "check_brier": _round(m["check_brier"]),
                                  "check_base_brier": _round(m["check_base_brier"]),
                                  "logit": [round(float(w), 5) for w in m["logit"]]}
                         for h, m in self.models.items() if h},
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 5)


def _word(x: float | None, pos: str, neg: str, flat: str, band: float) -> str:
    if x is None or abs(x) < band:
        return flat
    return pos if x > 0 else neg


VOL_WORDS = ("risk is rising, which widens the range of likely outcomes",
             "the market is calming, which narrows the range of likely outcomes",
             "risk is steady, so the usual range of outcomes applies")
FLOW_WORDS = ("buyers lead the order flow", "sellers lead the order flow", "order flow is balanced")
REL_WORDS = ("is outperforming the leader", "is lagging the leader", "tracks the leader")


def reasoning(s: Sample, p_up: float, contrib: np.ndarray) -> str:
    """Step-by-step reasoning from the features; numbers exactly as the prompt prints them."""
    f, a, h = s.features, s.asset, s.horizon_days
    pct, num = F.pct, F.num
    vol7, vol30 = pct(f["vol_7d"]).lstrip("+"), pct(f["vol_30d"]).lstrip("+")
    lines = [
        _question(a, h),
        f"1. Trend: {a} closed at {F.price(f['close'])} on {s.cutoff}. It moved {pct(f['ret_1d'])} in the "
        f"last day, {pct(f['ret_7d'])} over the week and {pct(f['ret_30d'])} over the month, so "
        f"{_momentum(f)}.",
        f"2. Volatility: realised vol is {vol7} a day on the week against {vol30} on the month; "
        f"{_word(f['vol_7d'] / f['vol_30d'] - 1 if f['vol_30d'] > 0 else 0.0, *VOL_WORDS, 0.15)}.",
        f"3. Participation: volume is {pct(f['volume_chg'], 0)} against the prior month and the taker-buy "
        f"ratio is {num(f['taker_ratio'], 2, sign=False)}, so "
        f"{_word((f['taker_ratio'] - 0.5) * 100, *FLOW_WORDS, 1.5)}.",
        f"4. Position: price is {pct(f['dd_30d'])} from its 30-day high and {pct(f['dd_90d'])} from its "
        f"90-day high; {_position(f)}.",
    ]
    relative = (f"5. Relative strength: against BTC it is {num(f['rel_btc_7d'])} points on the week and "
                f"{num(f['rel_btc_30d'])} on the month, so it {_word(f['rel_btc_7d'], *REL_WORDS, 1.0)}."
                if f.get("rel_btc_7d") is not None else None)
    return _finish(lines, relative, f, lambda v: pct(v, 0), p_up, contrib, h)


def _question(asset: str, h: int) -> str:
    """The first line restates the question (asset and horizon), where the prompt has just asked it: the
    answer can then copy both from the reasoning as well as from the prompt."""
    return f"Question: {asset} over the next {_horizon(h)}."


def _horizon(h: int) -> str:
    return "day" if h == 1 else f"{h} days"


def _way(x: float | None, band: float = 0.0) -> str:
    return "flat" if x is None or abs(x) <= band else "higher" if x > 0 else "lower"


def reasoning_words(s: Sample, p_up: float, contrib: np.ndarray) -> str:
    """The steps of :func:`reasoning` with each number replaced by its direction: no number but the
    day spans the prompt names (30-day, 90-day)."""
    f, a, h = s.features, s.asset, s.horizon_days
    vol = f["vol_7d"] / f["vol_30d"] - 1 if f["vol_30d"] > 0 else 0.0
    flow = (f["taker_ratio"] - 0.5) * 100
    lines = [
        _question(a, h),
        f"1. Trend: {a} moved {_way(f['ret_1d'])} in the last day, {_way(f['ret_7d'])} over the week and "
        f"{_way(f['ret_30d'])} over the month, so {_momentum(f)}.",
        f"2. Volatility: realised vol is {_word(vol, 'rising', 'calming', 'steady', 0.15)} on the week against the "
        f"month; {_word(vol, *VOL_WORDS, 0.15)}.",
        f"3. Participation: volume is {_way(f['volume_chg'])} against the prior month and the taker-buy ratio is "
        f"{_way(flow, 1.5)}, so {_word(flow, *FLOW_WORDS, 1.5)}.",
        f"4. Position: against its 30-day and 90-day highs, {_position(f)}.",
    ]
    relative = (f"5. Relative strength: against BTC it is {_way(f['rel_btc_7d'])} on the week and "
                f"{_way(f['rel_btc_30d'])} on the month, so it {_word(f['rel_btc_7d'], *REL_WORDS, 1.0)}."
                if f.get("rel_btc_7d") is not None else None)
    return _finish(lines, relative, f, lambda v: _way(v, 3.0), p_up, contrib, h)


def _finish(lines: list[str], relative: str | None, f: dict, say: Callable[[float], str], p_up: float,
            contrib: np.ndarray, h: int) -> str:
    """The question and steps 1-4 in ``lines``, then relative strength (when the asset is not BTC), the
    on-chain step (when the prompt has one, each value as ``say`` puts it), the weighing and the
    overall lines, numbered on."""
    lines = lines + ([relative] if relative else [])
    onchain = [(name, f[key]) for key, name in P.ONCHAIN_NAMES.items() if f.get(key) is not None]
    if onchain:
        told = ", ".join(f"{name} {say(v)}" for name, v in onchain)
        lines.append(f"{len(lines)}. On-chain: {told} against the prior month; activity is "
                     f"{_word(onchain[0][1], 'growing', 'shrinking', 'flat', 3.0)}.")
    return "\n".join(lines + _conclusion(p_up, contrib, h, len(lines) - 1))  # lines[0]: the question


def _conclusion(p_up: float, contrib: np.ndarray, h: int, n: int) -> list[str]:
    """The weighing and overall lines both reasonings end with, numbered from ``n + 1``."""
    lines = []
    top = [i for i in np.argsort(-np.abs(contrib))[:3] if abs(contrib[i]) > 1e-3]
    if top:
        named = [f"{M.NAMES[M.INPUTS[i]]} ({'supportive' if contrib[i] > 0 else 'a headwind'})" for i in top]
        listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
        lines.append(f"{n + 1}. Weighing: in the training history the signals that matter most "
                     f"here are {listed}.")
    edge = abs(p_up - 0.5)
    strength = "a slight" if edge < 0.03 else "a modest" if edge < 0.08 else "a clear"
    side = "up" if round(p_up, 2) >= 0.5 else "down"
    lines.append(f"Overall I lean {side} over the next {_horizon(h)}, with {strength} edge.")
    return lines


def _momentum(f: dict) -> str:
    week, month = f["ret_7d"], f["ret_30d"]
    if week > 0 and month > 0:
        return "short and medium-term momentum both point higher"
    if week < 0 and month < 0:
        return "short and medium-term momentum both point lower"
    return "momentum is mixed between the week and the month"


def _position(f: dict) -> str:
    if f["dd_30d"] > -3:
        return "it trades near its recent highs, a sign of strength"
    if f["dd_90d"] < -30:
        return "it sits in a deep drawdown, where rebounds and further capitulation both happen"
    return "it is in a moderate pullback from recent highs"
