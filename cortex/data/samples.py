"""Samples (asset, cutoff day t, horizon h): their prompts, outcomes and volatility scale.

Time discipline: a prompt is computed from frames cut at t (``frame.loc[:t]``) before anything
else happens, so no value after t can reach it. The outcome reads exactly two closes, at t and
at t+h. ``realized_vol`` is the volatility scale the reward divides return errors by::

    realized_vol = sqrt(mean(log(close[d] / close[d-1]) ** 2 for the 30 days d <= t)) * sqrt(h)

(the RMS daily log return of the 30 days up to and including t, scaled to the horizon, as a
fraction; known at t, so it describes the risk the forecaster faced, not the realised path).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from cortex.data import features as F
from cortex.data import prompts as P
from cortex.data.frame import DataError, iso, to_day, validate_frame

OUTCOME_COLUMNS = ("asset", "cutoff", "horizon_days", "outcome_return", "outcome_direction",
                   "realized_vol", "source", "synthetic")


@dataclass(frozen=True)
class Sample:
    """One forecasting question and, when known, its outcome."""

    asset: str
    cutoff: str  # ISO day t
    horizon_days: int
    prompt: list[dict[str, str]]  # [system, user]
    features: dict = field(repr=False)
    realized_vol: float
    outcome_return: float | None = None  # close[t+h] / close[t] - 1
    outcome_direction: str | None = None  # "up" if outcome_return > 0 else "down"
    source: str = ""
    synthetic: bool = False

    @property
    def known(self) -> bool:
        return self.outcome_return is not None

    @property
    def target_day(self) -> pd.Timestamp:
        return to_day(self.cutoff) + pd.Timedelta(days=self.horizon_days)

    def row(self) -> dict:
        """The outcome columns plus ``prompt``: what ``cortex.reward.score`` reads."""
        out = {k: getattr(self, k) for k in OUTCOME_COLUMNS}
        out["prompt"] = [dict(m) for m in self.prompt]
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def horizon_vol(rms_daily: float, horizon: int) -> float:
    return float(rms_daily * math.sqrt(horizon))


def outcome(frame: pd.DataFrame, cutoff, horizon: int) -> tuple[float, str] | None:
    """(close[t+h]/close[t] - 1, "up"|"down"), or None while day t+h is not in the frame."""
    t = to_day(cutoff)
    target = t + pd.Timedelta(days=horizon)
    if t not in frame.index or target not in frame.index:
        return None
    ret = float(frame.at[target, "close"] / frame.at[t, "close"] - 1.0)
    return ret, ("up" if ret > 0 else "down")


def realized_vol(frame: pd.DataFrame, cutoff, horizon: int) -> float:
    """See the module docstring: RMS of the 30 daily log returns up to t, times sqrt(h)."""
    close = frame.loc[frame.index <= to_day(cutoff), "close"].to_numpy(dtype=float)
    if len(close) <= F.VOL_WINDOW:
        raise DataError(f"need {F.VOL_WINDOW + 1} closes up to {iso(cutoff)} for realized_vol")
    return horizon_vol(F.rms_vol(close), horizon)


def _history(frames: Mapping[str, pd.DataFrame], asset: str, cutoff) -> tuple[F.History, F.History | None]:
    if asset not in frames:
        raise DataError(f"no frame for {asset}")
    hist = F.History.cut(frames[asset], asset, cutoff)
    btc = None
    if asset != "BTC" and "BTC" in frames and to_day(cutoff) in frames["BTC"].index:
        btc = F.History.cut(frames["BTC"], "BTC", cutoff)
    return hist, btc


def make_prompt(frames: Mapping[str, pd.DataFrame], asset: str, cutoff, horizon: int) -> list[dict]:
    """The [system, user] chat for (asset, cutoff, horizon), from data up to the cutoff only."""
    hist, btc = _history(frames, asset, cutoff)
    return P.messages(asset, hist.cutoff, horizon, F.compute(hist, btc), F.table(hist))


def make_sample(frames: Mapping[str, pd.DataFrame], asset: str, cutoff, horizon: int,
                source: str = "", synthetic: bool = False) -> Sample:
    """A sample with its prompt and, if day t+h is in the frame, its outcome."""
    hist, btc = _history(frames, asset, cutoff)
    return _sample(hist, btc, horizon, frames[asset], source, synthetic)


def _sample(hist, btc, horizon, frame, source, synthetic, feats=None, rows=None, known="lookup") -> Sample:
    feats = feats if feats is not None else F.compute(hist, btc)
    rows = rows if rows is not None else F.table(hist)
    if known == "lookup":
        known = outcome(frame, hist.cutoff, horizon)
    return Sample(
        asset=hist.asset, cutoff=hist.cutoff, horizon_days=int(horizon),
        prompt=P.messages(hist.asset, hist.cutoff, horizon, feats, rows), features=feats,
        realized_vol=horizon_vol(F.rms_vol(hist.cols["close"]), horizon),
        outcome_return=known[0] if known else None, outcome_direction=known[1] if known else None,
        source=source, synthetic=bool(synthetic),
    )


def build_samples(frames: Mapping[str, pd.DataFrame], assets: Sequence[str], horizons: Sequence[int],
                  start=None, end=None, *, source: str = "", synthetic: bool = False,
                  stride: int = 1, require_outcome: bool = True, progress: bool = False) -> list[Sample]:
    """Every sample with a cutoff in [start, end] (every ``stride``-th day) that has
    :data:`features.MIN_HISTORY` days of history and, if ``require_outcome``, a known outcome.
    Sorted by (cutoff, asset, horizon)."""
    from tqdm.auto import tqdm

    horizons = sorted({int(h) for h in horizons})
    if not horizons or horizons[0] < 1:
        raise DataError("horizons must be whole days >= 1")
    lo = to_day(start) if start is not None else None
    hi = to_day(end) if end is not None else None
    out: list[Sample] = []
    btc = _Series(frames["BTC"], "BTC") if "BTC" in frames else None
    for asset in tqdm(list(assets), desc="samples", unit="asset", disable=not progress):
        series = _Series(frames[asset], asset)
        n = len(series.days)
        for pos in range(F.MIN_HISTORY - 1, n, stride):
            t = series.stamps[pos]
            if (lo is not None and t < lo) or (hi is not None and t > hi):
                continue
            wanted = [h for h in horizons if not require_outcome or pos + h < n]
            if not wanted:
                continue
            hist = series.upto(pos)
            ref = None
            if asset != "BTC" and btc is not None and hist.cutoff in btc.where:
                ref = btc.upto(btc.where[hist.cutoff])
            feats, rows = F.compute(hist, ref), F.table(hist)
            close = series.arrays["close"]
            for h in wanted:
                known = None
                if pos + h < n:
                    ret = float(close[pos + h] / close[pos] - 1.0)
                    known = (ret, "up" if ret > 0 else "down")
                out.append(_sample(hist, ref, h, None, source, synthetic, feats, rows, known))
    out.sort(key=lambda s: (s.cutoff, s.asset, s.horizon_days))
    return out


class _Series:
    """A validated frame as arrays (rows are consecutive days, so row pos + h is day t + h)."""

    def __init__(self, frame: pd.DataFrame, asset: str):
        validate_frame(frame, asset, require_market=True)
        self.asset = asset
        self.stamps = list(frame.index)
        self.days = list(frame.index.strftime("%Y-%m-%d"))
        self.where = {d: i for i, d in enumerate(self.days)}
        self.arrays = {c: frame[c].to_numpy(dtype=float) for c in frame.columns}

    def upto(self, pos: int) -> F.History:
        """The history cut at row ``pos`` (the cutoff): rows after it are never part of the view."""
        lo = max(0, pos + 1 - F.LOOKBACK)
        return F.History(self.asset, self.days[lo : pos + 1], {c: v[lo : pos + 1] for c, v in self.arrays.items()})


def eval_samples(frames: Mapping[str, pd.DataFrame], assets: Sequence[str], horizons: Sequence[int],
                 window_start, window_end=None, as_of=None, **kwargs) -> list[Sample]:
    """Samples whose cutoff is in [window_start, window_end] and whose outcome is known by
    ``as_of`` (default: the last day in the frames), as validators draw evaluation sets."""
    samples = build_samples(frames, assets, horizons, window_start, window_end, **kwargs)
    if as_of is not None:
        limit = to_day(as_of)
        samples = [s for s in samples if s.target_day <= limit]
    return samples


def draw(samples: Sequence[Sample], n: int, seed: int | bytes | str) -> list[Sample]:
    """``n`` samples drawn without replacement, the same for the same seed and samples."""
    if isinstance(seed, (bytes, str)):
        seed = int.from_bytes((seed.encode() if isinstance(seed, str) else seed)[:16].ljust(16, b"\0"), "big")
    rng = np.random.default_rng(seed)
    ordered = sorted(samples, key=lambda s: (s.cutoff, s.asset, s.horizon_days))
    take = rng.choice(len(ordered), size=min(n, len(ordered)), replace=False)
    return [ordered[i] for i in sorted(take)]
