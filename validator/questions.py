"""Live questions (DESIGN.md §9): which questions each market day defines, and the validator's window.
Pure functions of the competition and the market clock: no chain, no model, no data.

- Every market day that has closed defines that day's questions: (asset, cutoff = that day, horizon)
  over the competition's assets × horizons, or, when the competition caps them
  (``scoring.questions_per_day``), a subset drawn from a seed of the competition id and the day (never
  a block hash), so every validator, and one that backfills later, asks the same questions.
- A question resolves when the candle of ``cutoff + horizon`` has closed (``Question.resolves``; the ledger
  scores an answer once that day has closed).
- The round looks at the days of the scoring window (``scoring.window_days`` days up to the newest
  closed day); answers older than the window are pruned from the ledger. The window and who may answer
  a day (``cortex.eval.evalset``: ``window``, ``may_answer``) are the one rule every role uses.
"""

from __future__ import annotations

import hashlib
from datetime import date

import numpy as np

from cortex.eval.evalset import EvalWindow, MarketClock, window
from cortex.protocol.competition import Competition
from cortex.protocol.ledger import Question


def day_questions(competition: Competition, day: date) -> list[Question]:
    """The questions ``day`` defines, sorted; a seeded subset of ``questions_per_day`` when capped."""
    every = sorted(Question(competition.id, asset, day.isoformat(), int(h))
                   for asset in competition.eval.assets for h in competition.eval.horizons_days)
    cap = competition.scoring.questions_per_day
    if not cap or cap >= len(every):
        return every
    seed = hashlib.sha256(f"{competition.id}:{day.isoformat()}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(seed[:16], "big"))
    return [every[i] for i in sorted(rng.choice(len(every), size=cap, replace=False))]


def scoring_window(clock: MarketClock, block: int, competition: Competition) -> EvalWindow:
    """The validator's window at ``block``: the ``scoring.window_days`` days up to the newest closed day."""
    return window(clock, block, competition.scoring.window_days, competition.eval.eligibility_delay_blocks)
