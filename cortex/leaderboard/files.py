"""The files the leaderboard reads beside the chain: validators' score tables, averager round records.

Validators publish one score table per round (``scores/round-NNNNNN.json`` and a copy as
``scores/latest.json``, see ``validator/round.py``); the averager writes one record per merge round
(``rounds/round-NNNNNN.json``). Both are looked for recursively under every state folder given.

Every file is untrusted: one that is too large, does not parse, or is not exactly what its record
class writes (``ScoreTable.from_json``, ``AveragerRound.from_json``) is skipped with a logged
warning (once per version of the file), and the rest are still read. What comes back holds only the
fields of those records (a score table reduced to what the pages show), so the pages and the JSON
API never pass on anything else a file carries.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from cortex.protocol.records import RecordError
from cortex.protocol.rounds import AveragerRound
from cortex.protocol.scores import CompetitionTable, ModelMetrics, ScoreTable

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 32 << 20
_METRIC_KEYS = 64  # at most this many metrics kept per model


class Malformed(ValueError):
    """A file, or a part of one, that does not have the expected shape."""


def _metrics(value: Any) -> dict[str, float | None]:
    """Named numbers (the reward breakdown and backtest metrics); anything else is dropped."""
    if not isinstance(value, dict):
        return {}
    out: dict[str, float | None] = {}
    for key, v in list(value.items())[:_METRIC_KEYS]:
        if isinstance(key, str) and (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                                   and math.isfinite(v))):
            out[key] = None if v is None else float(v)
    return out


def _metrics_of(metrics: ModelMetrics | None) -> dict[str, float | None]:
    if metrics is None:
        return {}
    return _metrics({k: v for k, v in metrics.to_json().items() if k not in ("kind", "schema")})


def _competition(c: CompetitionTable) -> dict:
    """A competition's table as the pages read it: one row per scored or refused model."""
    models = [{"uid": m.uid, "hotkey": m.hotkey, "repo": m.repo, "revision": m.revision,
               "commit_block": m.commit_block, "reason": None if m.earned else m.reason,
               "detail": f"versus {m.versus}" if m.versus else None, "advantage": m.advantage, "ci_low": m.ci_low,
               "ci_high": m.ci_high, "days": m.days, "earned": m.earned, "weight": m.weight,
               "mean_reward": c.metrics[m.key].mean_reward if m.key in c.metrics else None,
               "metrics": _metrics_of(c.metrics.get(m.key))} for m in c.scores.models]
    models += [{"uid": r.uid, "hotkey": r.hotkey, "repo": r.key.rsplit("@", 1)[0], "revision": r.key.rsplit("@", 1)[-1],
                "commit_block": r.commit_block, "reason": r.reason, "detail": r.detail, "advantage": None,
                "ci_low": None, "ci_high": None, "days": 0, "earned": False, "weight": 0.0, "mean_reward": None,
                "metrics": {}} for r in c.refused]
    base = c.metrics.get(c.base)
    return {"base": c.base, "window": list(c.window), "days": c.days, "unearned": c.scores.unearned,
            "base_model": {"mean_reward": base.mean_reward if base else None, "metrics": _metrics_of(base)},
            "models": models}


def score_table(data: Any) -> dict:
    """The parts of one validator's score table (``cortex.protocol.scores.ScoreTable``) the pages show;
    raises ``RecordError`` when it is not exactly a score table."""
    t = ScoreTable.from_json(data)
    return {"validator": t.validator, "round": t.round, "sync_block": t.sync_block,
            "competitions": {cid: _competition(c) for cid, c in t.competitions.items()}}


def averager_round(data: Any) -> dict:
    """One averager round record (:class:`cortex.protocol.rounds.AveragerRound`) as plain data; raises
    ``RecordError`` when it is not exactly that."""
    return AveragerRound.from_json(data).to_json()


def _read(path: Path) -> Any:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise Malformed(f"larger than {MAX_FILE_BYTES >> 20} MiB")
    return json.loads(path.read_text(encoding="utf-8"))


_warned: set[tuple[str, int, int]] = set()  # (path, mtime, size) of files already warned about


def _load(paths: Iterable[Path], check) -> list[tuple[Path, dict]]:
    out = []
    for path in paths:
        try:
            out.append((path, check(_read(path))))
        except (OSError, ValueError, RecursionError, RecordError) as exc:  # Malformed and JSON errors are ValueErrors
            try:
                stat = path.stat()
                key = (str(path), stat.st_mtime_ns, stat.st_size)
            except OSError:
                key = (str(path), 0, 0)
            # a server re-reads every few seconds: warn once per version of a file
            log.log(logging.DEBUG if key in _warned else logging.WARNING, "skipping %s: %s", path, exc)
            _warned.add(key)
    return out


def _find(state_dirs: Sequence[Path], *patterns: str) -> list[Path]:
    found: set[Path] = set()
    for root in map(Path, state_dirs):
        if not root.is_dir():
            log.warning("state folder %s does not exist; nothing read from it", root)
            continue
        for pattern in patterns:
            found.update(p for p in root.rglob(pattern) if p.is_file())
    return sorted(found)


def score_tables(state_dirs: Sequence[Path]) -> list[dict]:
    """Every readable score table, one per (validator, sync block): ``round-*.json`` wins over ``latest.json``."""
    paths = _find(state_dirs, "scores/round-*.json", "scores/latest.json")
    paths.sort(key=lambda p: p.name == "latest.json")
    tables: dict[tuple[str, int], dict] = {}
    for _, table in _load(paths, score_table):
        tables.setdefault((table["validator"], table["sync_block"]), table)
    return sorted(tables.values(), key=lambda t: (t["sync_block"], t["validator"]))


def averager_rounds(state_dirs: Sequence[Path]) -> list[dict]:
    """Every readable averager round record, oldest first, each round once."""
    records: dict[tuple, dict] = {}
    for _, record in _load(_find(state_dirs, "rounds/round-*.json"), averager_round):
        records.setdefault((record["round"], record["competition"], record["block"]), record)
    return sorted(records.values(), key=lambda r: (r["block"] if r["block"] is not None else -1, r["round"]))
