"""The validator's small state: one readable JSON file, written atomically, with a schema version.

The answers and their rewards live in the outcome ledger (``validator.ledger``, SQLite); this file
holds only what the ledger does not:

- the round number and the block of the last weights set;
- the round in progress: its key (sync block and competitions) and, once decided, its weights, so
  that a validator restarted in the same tempo only sets them again instead of redoing the round;
- the verdicts of adapter checks (an adapter revision is immutable, so a refused one stays refused
  and is not checked again).

There is no smoothing across rounds: the scoring window (``scoring.window_days`` market days of
resolved questions) is what carries the past into a decision, the same for every validator. Never
pickle. Which base was current on each question day is not kept here: it is read from the chain's
pointer history every round (``cortex.model.pointer.bases_at``), so it never depends on when this
validator happened to run. Schema 2 files (which recorded it from the runs) load with it dropped.
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

SCHEMA = 3
READABLE = (2, 3)  # 2: with the day bases recorded from the runs, now dropped


class StateError(CortexError):
    """The state file cannot be used as it is."""


@dataclass
class RoundProgress:
    """The round under way: its key, and its weights once decided (uid as a string → weight)."""

    key: str = ""  # identifies the round: the sync block and the active competition ids
    weights: dict[str, float] | None = None


@dataclass
class ValidatorState:
    round: int = 0
    last_weights_block: int = -1
    progress: RoundProgress = field(default_factory=RoundProgress)
    refused: dict[str, dict[str, str]] = field(default_factory=dict)  # model key → {"reason", "detail"}

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidatorState:
        if data.get("schema") not in READABLE:
            raise StateError(f"state schema {data.get('schema')!r} is not {SCHEMA} (written by another version of "
                             "cortex); move the file aside to start fresh: the ledger keeps the answers")
        try:
            progress = data["progress"]
            weights = progress["weights"]
            return cls(
                round=int(data["round"]),
                last_weights_block=int(data["last_weights_block"]),
                progress=RoundProgress(str(progress["key"]),
                                       None if weights is None else {str(u): float(w) for u, w in weights.items()}),
                refused={str(m): {"reason": str(v["reason"]), "detail": str(v.get("detail", ""))}
                         for m, v in data["refused"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"state file is malformed ({exc!r}); move it aside to start fresh") from None


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
