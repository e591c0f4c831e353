"""The outcome ledger (DESIGN.md §9): every model revision's answer to every live question, and its reward.

One SQLite database per validator (``<state folder>/ledger.sqlite``, WAL mode), one row per
``(model, question)`` under a primary key, so each outcome counts once per model and an answer is
never generated twice: a round asks the ledger what a model still lacks, stores each model's batch
of answers in one transaction, and scores the answers whose outcome has resolved. At real scale
(hundreds of models × tens of questions a day × a rolling window) rewriting a JSON file on every
save would not do; SQLite ships with Python and survives a kill mid-write.

Every row read back goes through ``LedgerEntry.from_json`` (strict types), so a damaged database
is a clear :class:`LedgerError`, never a silently wrong score. ``export`` writes the entries of a
ledger as JSON: with the pure ``validator.scoring.score_competition`` anyone can replay a decision
(``python neurons/validator.py --export-ledger FILE``; the ledger holds the scoring window).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from cortex.errors import CortexError
from cortex.protocol.ledger import LedgerEntry, Question
from cortex.protocol.records import Record, RecordError

SCHEMA = 1  # PRAGMA user_version of the database
_COLUMNS = ("model", "question", "competition", "asset", "cutoff", "horizon_days", "completion", "reward",
            "parts", "reason", "new_tokens", "generated_block")
_CREATE = """
CREATE TABLE IF NOT EXISTS entries (
    model TEXT NOT NULL,            -- repo@revision
    question TEXT NOT NULL,         -- Question.id
    competition TEXT NOT NULL,
    asset TEXT NOT NULL,
    cutoff TEXT NOT NULL,           -- ISO day
    horizon_days INTEGER NOT NULL,
    resolves TEXT NOT NULL,         -- ISO day whose close makes the outcome known
    completion TEXT NOT NULL,
    reward REAL,                    -- NULL until scored
    parts TEXT NOT NULL,            -- JSON object: the reward breakdown
    reason TEXT,                    -- why there is no usable answer
    new_tokens INTEGER NOT NULL,
    generated_block INTEGER NOT NULL,
    PRIMARY KEY (model, question)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_day ON entries (competition, cutoff);
CREATE INDEX IF NOT EXISTS entries_unscored ON entries (competition, resolves) WHERE reward IS NULL AND reason IS NULL;
"""


class LedgerError(CortexError):
    """The ledger database cannot be used as it is."""


@dataclass(frozen=True)
class LedgerExport(Record):
    """A validator's ledger entries (one competition, or all): what a replay of its decision reads."""

    kind = "ledger_export"
    schema = 1

    validator: str = ""  # the exporting validator's hotkey name or address
    competition: str | None = None  # None: every competition
    entries: list[LedgerEntry] = field(default_factory=list)


def entry_for(model: str, question: Question, *, completion: str = "", reason: str | None = None,
              new_tokens: int = 0, block: int = 0) -> LedgerEntry:
    """A new, not yet scored ledger entry: ``model``'s answer to ``question``."""
    return LedgerEntry(model=model, question=question.id, competition=question.competition, asset=question.asset,
                       cutoff=question.cutoff, horizon_days=question.horizon_days, completion=completion,
                       reason=reason, new_tokens=new_tokens, generated_block=block)


class Ledger:
    """The SQLite ledger at ``path`` (created on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None)  # transactions are explicit
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if version == 0 and not tables:
                self.db.executescript(_CREATE + f"PRAGMA user_version={SCHEMA};")
            elif version != SCHEMA or "entries" not in tables:
                raise LedgerError(f"ledger {self.path} has schema {version}, not {SCHEMA}: written by another "
                                  "version of cortex; move it aside (the validator backfills the window)")
            self.db.execute("SELECT count(*) FROM entries").fetchone()
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from None

    def _corrupt(self, exc: Exception) -> LedgerError:
        return LedgerError(f"ledger {self.path} is not a usable SQLite database ({exc}); move it (and its -wal and "
                           "-shm files) aside: the validator regenerates the answers of the window")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- writes ----------------------------------------------------------------------------

    def add(self, entries: Iterable[LedgerEntry]) -> int:
        """Store a batch of new answers in one transaction; an existing ``(model, question)`` is kept as it is.

        Returns how many were new.
        """
        rows = [(e.model, e.question, e.competition, e.asset, e.cutoff, e.horizon_days,
                 Question(e.competition, e.asset, e.cutoff, e.horizon_days).resolves, e.completion, e.reward,
                 json.dumps(e.parts, sort_keys=True), e.reason, e.new_tokens, e.generated_block) for e in entries]
        return self._write("INSERT INTO entries (model, question, competition, asset, cutoff, horizon_days, resolves, "
                           "completion, reward, parts, reason, new_tokens, generated_block) "
                           "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (model, question) DO NOTHING", rows)

    def set_rewards(self, scored: Iterable[LedgerEntry]) -> int:
        """Record the rewards (and their parts) of entries whose outcome resolved, in one transaction."""
        rows = [(e.reward, json.dumps(e.parts, sort_keys=True), e.model, e.question) for e in scored]
        return self._write("UPDATE entries SET reward = ?, parts = ? WHERE model = ? AND question = ? "
                           "AND reward IS NULL", rows)

    def prune(self, competition: str, before: str) -> int:
        """Drop the competition's entries whose cutoff is before ``before`` (ISO day): outside the window."""
        return self._write("DELETE FROM entries WHERE competition = ? AND cutoff < ?", [(competition, before)])

    def _write(self, sql: str, rows: Sequence[tuple]) -> int:
        if not rows:
            return 0
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                changed = sum(self.db.execute(sql, row).rowcount for row in rows)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
            return changed
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from None

    # --- reads -----------------------------------------------------------------------------

    def _read(self, where: str, args: tuple) -> list[LedgerEntry]:
        try:
            rows = self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM entries WHERE {where} "
                                   "ORDER BY cutoff, question, model", args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from None
        out = []
        for row in rows:
            data = dict(zip(_COLUMNS, row))
            try:
                data["parts"] = json.loads(data["parts"])
                out.append(LedgerEntry.from_json(data, where=f"ledger entry {data['model']} {data['question']}"))
            except (ValueError, TypeError, RecordError) as exc:
                raise LedgerError(f"ledger {self.path} holds a damaged entry ({exc}); move the file aside: the "
                                  "validator regenerates the answers of the window") from None
        return out

    def answered(self, model: str, questions: Iterable[Question]) -> set[str]:
        """The ids among ``questions`` that ``model`` has an entry for."""
        ids = [q.id for q in questions]
        found: set[str] = set()
        for start in range(0, len(ids), 500):  # SQLite's limit on bound parameters
            chunk = ids[start:start + 500]
            try:
                found.update(r[0] for r in self.db.execute(
                    f"SELECT question FROM entries WHERE model = ? AND question IN ({','.join('?' * len(chunk))})",
                    (model, *chunk)))
            except sqlite3.DatabaseError as exc:
                raise self._corrupt(exc) from None
        return found

    def missing(self, model: str, questions: Sequence[Question]) -> list[Question]:
        """The questions ``model`` has not answered yet, in the given order."""
        done = self.answered(model, questions)
        return [q for q in questions if q.id not in done]

    def unscored(self, competition: str, resolved_by: str) -> list[LedgerEntry]:
        """Answers without a reward whose outcome is known by ``resolved_by`` (ISO day), failed ones excluded."""
        return self._read("competition = ? AND resolves <= ? AND reward IS NULL AND reason IS NULL",
                          (competition, resolved_by))

    def entries(self, competition: str, start: str, end: str) -> list[LedgerEntry]:
        """Every entry of the competition with a cutoff in [start, end] (ISO days)."""
        return self._read("competition = ? AND cutoff >= ? AND cutoff <= ?", (competition, start, end))

    def export(self, path: str | Path, competition: str | None = None, validator: str = "") -> int:
        """Write the entries (of ``competition``, or all) as a :class:`LedgerExport`, atomically; returns how many."""
        entries = self._read("competition = ?" if competition else "1", (competition,) if competition else ())
        LedgerExport(validator, competition, entries).write(path)
        return len(entries)


def scored(entry: LedgerEntry, reward: float, parts: dict) -> LedgerEntry:
    """``entry`` with its reward, once its outcome is known."""
    return replace(entry, reward=float(reward), parts=parts)
