"""The outcome ledger's records (DESIGN.md §9): one answer of one model revision to one live question.

A **question** is (competition, asset, cutoff day, horizon): defined when the cutoff day's candle
closes, resolved when the candle of ``cutoff + horizon`` closes. A **ledger entry** is one model
revision's greedy answer to one question, generated once (an adapter revision is immutable, so the
answer never changes), and scored with the reward (§8) once the outcome is known. The validator's
ledger stores entries (SQLite); the pure scoring function reads them; an export of them replays a
validator's decision. Entries are keyed by ``(model, question)``: each outcome counts once per model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from cortex.protocol.records import Record


@dataclass(frozen=True, order=True)
class Question:
    """One live question: the market ``asset`` after ``cutoff`` (ISO day), over ``horizon_days``."""

    competition: str
    asset: str
    cutoff: str  # ISO date of the last candle the prompt may show
    horizon_days: int

    @property
    def id(self) -> str:
        return f"{self.competition}:{self.asset}:{self.cutoff}:{self.horizon_days}"

    @property
    def resolves(self) -> str:
        """The day whose close makes the outcome known."""
        return (date.fromisoformat(self.cutoff) + timedelta(days=self.horizon_days)).isoformat()


@dataclass(frozen=True)
class LedgerEntry(Record):
    """One model revision's answer to one question, with its reward once the outcome resolved."""

    kind = "ledger_entry"
    schema = 1

    model: str  # the model key: "repo@revision" of an adapter, or of the base it was scored against
    question: str  # Question.id
    competition: str
    asset: str
    cutoff: str  # ISO day (the question's day: the unit of the confidence interval)
    horizon_days: int
    completion: str = ""  # the generated answer (kept so that anyone can re-score it)
    reward: float | None = None  # None until the outcome resolved (or when the model failed: see reason)
    parts: dict[str, Any] = field(default_factory=dict)  # reward breakdown (accuracy, depth, penalties, p_up …)
    reason: str | None = None  # why there is no usable answer (generation_failed, time_budget …)
    new_tokens: int = 0
    generated_block: int = 0

    @property
    def resolved(self) -> bool:
        return self.reward is not None
