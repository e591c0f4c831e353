"""The forecast API's two halves, pure of any server: a question's prompt from the latest market data, and
the answer parsed.

The prompt is the validators' own (``cortex.data.make_sample``: the same builder, features and table
as every live question), for (asset, the source's latest closed day, horizon); the answer is parsed with
the reward's strict parser (``cortex.reward.parse``) under the competition's reward settings, so a
forecast the API calls well-formed is one a validator would score.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from cortex.data import DataError, make_sample
from cortex.errors import CortexError
from cortex.eval.evalset import HISTORY_LOOKBACK_DAYS
from cortex.protocol.competition import Competition
from cortex.reward.parse import parse_completion

MARKET_ASSETS_WITH = ("BTC",)  # every prompt but BTC's compares with BTC (the builder reads its frame)


class ForecastError(CortexError):
    """A forecast request that cannot be answered as asked (unknown asset or horizon, no data)."""


@dataclass(frozen=True)
class Question:
    asset: str
    horizon_days: int
    cutoff: str  # the last day the prompt shows (ISO)
    messages: list[dict[str, str]]
    market: dict[str, Any]  # what the model saw: source, cutoff, features (the table is in the prompt)


def check_question(competition: Competition, asset: Any, horizon_days: Any) -> tuple[str, int]:
    """``(ASSET, horizon)`` when the competition asks about them, else a ForecastError naming what it does ask."""
    assets, horizons = competition.eval.assets, competition.eval.horizons_days
    if not isinstance(asset, str) or asset.upper() not in assets:
        raise ForecastError(f"unknown asset {str(asset)[:20]!r}: {competition.id} forecasts {', '.join(assets)}")
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int) or horizon_days not in horizons:
        raise ForecastError(f"unknown horizon_days {str(horizon_days)[:20]!r}: {competition.id} forecasts "
                            f"{', '.join(map(str, horizons))} days")
    return asset.upper(), horizon_days


def build_question(source: Any, competition: Competition, asset: Any, horizon_days: Any,
                   cutoff: str | None = None) -> Question:
    """The prompt of (asset, horizon) at ``cutoff`` (default: the source's latest day), from ``source``."""
    asset, horizon = check_question(competition, asset, horizon_days)
    end = None
    if cutoff is not None:
        try:
            end = date.fromisoformat(cutoff)
        except (TypeError, ValueError):
            raise ForecastError(f"cutoff must be an ISO day (YYYY-MM-DD), got {str(cutoff)[:20]!r}") from None
    names = sorted({asset, *MARKET_ASSETS_WITH})
    try:
        start = None if end is None else end - timedelta(days=HISTORY_LOOKBACK_DAYS)
        frames = source.load(names, start, end)
        if end is None:  # the latest closed day: load its lookback only, then build from that
            last = frames[asset].index[-1].date()
            frames = {k: f.loc[str(last - timedelta(days=HISTORY_LOOKBACK_DAYS)):] for k, f in frames.items()}
        day = frames[asset].index[-1]
        sample = make_sample(frames, asset, day, horizon, source=getattr(source, "name", ""),
                             synthetic=bool(getattr(source, "is_synthetic", False)))
    except (DataError, KeyError, IndexError, ValueError) as exc:
        raise ForecastError(f"no market data for {asset} up to {cutoff or 'today'}: {exc}") from None
    market = {"source": getattr(source, "name", ""), "synthetic": sample.synthetic, "cutoff": sample.cutoff,
              "features": json.loads(json.dumps(sample.features, default=float))}
    return Question(asset, horizon, sample.cutoff, sample.prompt, market)


def forecast_answer(question: Question, completion: str, competition: Competition) -> dict[str, Any]:
    """The parsed answer: ``forecast`` (None with ``parse_error`` when the answer is not in format) and its reasoning."""
    parsed = parse_completion(completion, question.asset, question.horizon_days, competition.reward)
    return {"forecast": parsed.answer, "reasoning": parsed.reasoning.strip() if parsed.answer else None,
            "parse_error": parsed.error, "completion": completion}
