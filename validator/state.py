"""The validator's state: one readable JSON file, written atomically, with a schema version.

It holds what must survive a restart: the round number, the smoothed scores
(keyed by hotkey, since uids are recycled), each model's results for the last
few rounds, and the round in progress (every evaluation already finished, keyed
by competition and revision), so that a validator killed mid-round resumes
without downloading or scoring anything twice. Never pickle.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cortex.atomic import write_json
from cortex.errors import CortexError

log = logging.getLogger(__name__)

SCHEMA = 1
HISTORY = 8  # rounds of results kept per model


class StateError(CortexError):
    """The state file cannot be used as it is."""


@dataclass
class ModelResult:
    """One model's outcome in one round."""

    round: int
    competition: str
    uid: int
    repo: str
    revision: str
    commit_block: int
    win_rate: float = 0.0
    mean_reward: float = 0.0
    mean_advantage: float = 0.0
    weight: float = 0.0
    reason: str | None = None  # why it scored zero, when it did
    metrics: dict[str, Any] = field(default_factory=dict)  # backtest metrics, reward breakdown


@dataclass
class RoundProgress:
    """Evaluations finished in the round under way: ``competition@repo@revision`` → rewards."""

    key: str = ""  # identifies the round: competition ids and the sync block
    done: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class ValidatorState:
    round: int = 0
    last_weights_block: int = -1
    smoothed: dict[str, dict[str, float]] = field(default_factory=dict)  # competition → hotkey → score
    models: dict[str, list[ModelResult]] = field(default_factory=dict)  # hotkey → recent results
    base_history: list[dict[str, Any]] = field(default_factory=list)  # base model's reward per round
    progress: RoundProgress = field(default_factory=RoundProgress)

    def record(self, hotkey: str, result: ModelResult) -> None:
        results = [r for r in self.models.get(hotkey, []) if r.round != result.round
                   or r.competition != result.competition]
        self.models[hotkey] = (results + [result])[-HISTORY:]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidatorState:
        if data.get("schema") != SCHEMA:
            raise StateError(f"state schema {data.get('schema')!r} is not {SCHEMA}; move the file aside to start fresh")
        try:
            return cls(
                round=int(data["round"]),
                last_weights_block=int(data["last_weights_block"]),
                smoothed={c: {h: float(v) for h, v in s.items()} for c, s in data["smoothed"].items()},
                models={h: [ModelResult(**r) for r in rs] for h, rs in data["models"].items()},
                base_history=list(data["base_history"]),
                progress=RoundProgress(**data["progress"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"state file is malformed ({exc}); move it aside to start fresh") from None


def load(path: str | Path) -> ValidatorState:
    """The saved state, or a fresh one when there is no file yet."""
    path = Path(path)
    if not path.exists():
        return ValidatorState()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read validator state {path} ({exc}); move it aside to start fresh") from None
    if not isinstance(data, dict):
        raise StateError(f"validator state {path} is not a JSON object; move it aside to start fresh")
    return ValidatorState.from_dict(data)


def save(path: str | Path, state: ValidatorState) -> None:
    write_json(path, state.to_dict())
