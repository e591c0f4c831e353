"""What the live record reads beside the score tables: the validators' outcome ledgers, the questions'
outcomes and the analyst heuristic's forecasts, from a market source (``cortex.leaderboard.live`` computes).

The ledger database belongs to the validator (``validator/ledger.py``, a role package the core may not
import), so it is read here directly, read-only, through the same record class (``LedgerEntry.from_json``,
strict types): a file that is not a ledger, or a damaged row, is skipped with a logged warning. Several
validators' ledgers hold the same base answers (greedy decoding of the same base): each
``(model, question)`` is kept once.

The analyst heuristic (``cortex.data.teachers.analyst``) is fitted on the ``FIT_DAYS`` days that end a
longest horizon before the first question (only outcomes known by then), and forecasts each question
from the same sample the validators' prompt is built from.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from cortex.protocol.ledger import LedgerEntry
from cortex.protocol.records import RecordError

log = logging.getLogger(__name__)

LEDGER_FILE = "ledger.sqlite"
COLUMNS = ("model", "question", "competition", "asset", "cutoff", "horizon_days", "completion", "reward",
           "parts", "reason", "new_tokens", "generated_block")
FIT_DAYS = 365
HISTORY_DAYS = 130  # market history a prompt needs before its cutoff (cortex.eval.evalset.HISTORY_LOOKBACK_DAYS)


def read_ledger(path: Path, models: set[str] | None = None) -> list[LedgerEntry]:
    """The entries of one ledger (of ``models`` only, when given); [] with a warning when it cannot be read."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM entries ORDER BY cutoff, question, model").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        log.warning("ledger %s cannot be read (%s); its answers are left out of the live record", path, exc)
        return []
    out = []
    for row in rows:
        data = dict(zip(COLUMNS, row))
        if models is not None and data["model"] not in models:
            continue
        try:
            data["parts"] = json.loads(data["parts"])
            out.append(LedgerEntry.from_json(data, where=f"{path}: {data['model']} {data['question']}"))
        except (ValueError, TypeError, RecordError) as exc:
            log.warning("skipping a damaged ledger row: %s", exc)
    return out


def ledger_files(state_dirs: Sequence[Path]) -> list[Path]:
    return sorted({p for root in map(Path, state_dirs) if root.is_dir() for p in root.rglob(LEDGER_FILE) if p.is_file()})


def ledger_entries(state_dirs: Sequence[Path], models: set[str] | None = None) -> list[LedgerEntry]:
    """Every readable ledger's entries under the state folders, each ``(model, question)`` once (a scored copy first)."""
    found = ledger_files(state_dirs)
    kept: dict[tuple[str, str], LedgerEntry] = {}
    for path in found:
        for e in read_ledger(path, models):
            key = (e.model, e.question)
            if key not in kept or (kept[key].reward is None and e.reward is not None):
                kept[key] = e
    return list(kept.values())


def market_facts(source: Any, entries: Sequence[LedgerEntry]) -> tuple[dict[str, bool], dict[str, float]]:
    """``(outcomes, analyst)``: question id → whether the asset went up (resolved questions only), and
    question id → the analyst heuristic's p_up (empty when it cannot be fitted: too little history)."""
    from cortex.data import build_samples, make_sample, outcome
    from cortex.data.teachers.analyst import AnalystTeacher
    from cortex.data.teachers.base import TeacherError

    questions = {e.question: e for e in entries}
    if not questions:
        return {}, {}
    assets = sorted({e.asset for e in questions.values()} | {"BTC"})
    horizons = sorted({e.horizon_days for e in questions.values()})
    first = min(date.fromisoformat(e.cutoff) for e in questions.values())
    last = max(date.fromisoformat(e.cutoff) for e in questions.values())
    fit_end = first - timedelta(days=max(horizons))
    fit_start = fit_end - timedelta(days=FIT_DAYS)
    frames = source.load(assets, fit_start - timedelta(days=HISTORY_DAYS), last + timedelta(days=max(horizons)))
    outcomes, samples = {}, {}
    for qid, e in questions.items():
        if e.asset not in frames:
            continue
        known = outcome(frames[e.asset], e.cutoff, e.horizon_days)
        if known is None:
            continue
        outcomes[qid] = known[1] == "up"
        try:
            samples[qid] = make_sample(frames, e.asset, e.cutoff, e.horizon_days)
        except Exception as exc:  # noqa: BLE001 - no analyst forecast for this question, the rest go on
            log.debug("no analyst sample for %s: %s", qid, exc)
    analyst: dict[str, float] = {}
    try:
        teacher = AnalystTeacher()
        teacher.fit(build_samples(frames, assets, horizons, start=fit_start.isoformat(), end=fit_end.isoformat()))
        analyst = {qid: teacher.predict(s)[0] for qid, s in samples.items()}
    except (TeacherError, ValueError) as exc:
        log.warning("the analyst baseline cannot be fitted before %s: %s", first, exc)
    return outcomes, analyst


def live_records(tables: Sequence[dict], state_dirs: Sequence[Path], source: Any) -> dict[str, list[dict]]:
    """Per competition, each base's live record (``cortex.leaderboard.live.base_records``): the bases are
    those the score tables name, oldest first (the latest round's is the current one)."""
    from cortex.leaderboard.live import base_records

    bases: dict[str, list[str]] = {}
    for table in sorted(tables, key=lambda t: t["sync_block"]):
        for cid, comp in table["competitions"].items():
            keys = bases.setdefault(cid, [])
            if comp["base"] in keys:
                keys.remove(comp["base"])  # a base pointed back to is current again
            keys.append(comp["base"])
    # the leaderboard asks every few seconds: computed again only when a ledger or the bases change
    key = (tuple(sorted((c, tuple(k)) for c, k in bases.items())), getattr(source, "name", repr(source)),
           tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for p in ledger_files(state_dirs)
                 for f in (p, p.with_name(p.name + "-wal")) if f.exists()))  # WAL mode: writes land in -wal first
    if _LAST.get("key") == key:
        return _LAST["value"]
    entries = ledger_entries(state_dirs, {k for keys in bases.values() for k in keys})
    outcomes, analyst = market_facts(source, entries)
    value = {cid: base_records([e for e in entries if e.competition == cid], keys, outcomes, analyst)
             for cid, keys in sorted(bases.items())}
    _LAST.update(key=key, value=value)
    return value


_LAST: dict[str, Any] = {}  # the last live record computed, and what it was computed from
