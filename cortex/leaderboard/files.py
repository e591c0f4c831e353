"""The files the leaderboard reads beside the chain: validators' score tables, averager round records.

Validators publish one score table per round (``scores/round-NNNNNN.json`` and a copy as
``scores/latest.json``, see ``validator/round.py``); the averager writes one record per merge round
(``rounds/round-NNNNNN.json``). Both are looked for recursively under every state folder given.

Every file is untrusted: one that is too large, does not parse, or does not have the expected
shape (types, finite numbers) is skipped with a logged warning (once per version of the file),
and the rest are still read. What
comes back holds only the fields checked here, so the pages and the JSON API never pass on
anything else a file carries.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 32 << 20
STATUSES = ("published", "rejected", "skipped")
_METRIC_KEYS = 64  # at most this many metrics kept per model


class Malformed(ValueError):
    """A file, or a part of one, that does not have the expected shape."""


def _int(d: dict, key: str) -> int:
    value = d.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Malformed(f"{key!r} is not an integer")
    return value


def _num(d: dict, key: str, *, optional: bool = False) -> float | None:
    value = d.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Malformed(f"{key!r} is not a finite number")
    return float(value)


def _str(d: dict, key: str, *, optional: bool = False) -> str | None:
    value = d.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise Malformed(f"{key!r} is not a string")
    return value


def _dict(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise Malformed(f"{what} is not an object")
    return value


def _list(value: Any, what: str) -> list:
    if not isinstance(value, list):
        raise Malformed(f"{what} is not a list")
    return value


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


def _model(m: Any) -> dict:
    m = _dict(m, "a model row")
    return {"uid": _int(m, "uid"), "hotkey": _str(m, "hotkey"), "repo": _str(m, "repo"),
            "revision": _str(m, "revision"), "commit_block": _int(m, "commit_block"),
            "reason": _str(m, "reason", optional=True), "detail": _str(m, "detail", optional=True),
            "win_rate": _num(m, "win_rate"), "mean_reward": _num(m, "mean_reward"),
            "mean_advantage": _num(m, "mean_advantage", optional=True),
            "softmax": _num(m, "softmax", optional=True), "smoothed": _num(m, "smoothed", optional=True),
            "weight": _num(m, "weight", optional=True), "metrics": _metrics(m.get("metrics"))}


def _competition(cid: Any, t: Any) -> dict:
    if not isinstance(cid, str):
        raise Malformed("a competition id is not a string")
    t = _dict(t, f"competition {cid!r}")
    base = _dict(t.get("base_model"), "base_model")
    return {"base": _str(t, "base", optional=True),
            "base_model": {"win_rate": _num(base, "win_rate"), "mean_reward": _num(base, "mean_reward"),
                           "metrics": _metrics(base.get("metrics"))},
            "models": [_model(m) for m in _list(t.get("models"), "models")]}


def score_table(data: Any) -> dict:
    """The checked parts of one validator's score table; raises ``Malformed``."""
    data = _dict(data, "the table")
    comps = _dict(data.get("competitions"), "competitions")
    return {"validator": _str(data, "validator"), "round": _int(data, "round"),
            "sync_block": _int(data, "sync_block"),
            "competitions": {cid: _competition(cid, t) for cid, t in comps.items()}}


def _input(i: Any) -> dict:
    i = _dict(i, "an input")
    return {"uid": _int(i, "uid") if "uid" in i else None, "hotkey": _str(i, "hotkey", optional=True),
            "repo": _str(i, "repo", optional=True), "revision": _str(i, "revision", optional=True),
            "commit_block": _int(i, "commit_block") if i.get("commit_block") is not None else None,
            "weight": _num(i, "weight", optional=True), "score": _num(i, "score", optional=True),
            "decision": _str(i, "decision", optional=True), "reason": _str(i, "reason", optional=True)}


def averager_round(data: Any) -> dict:
    """The checked parts of one averager round record; raises ``Malformed``."""
    data = _dict(data, "the record")
    status = _str(data, "status")
    if status not in STATUSES:
        raise Malformed(f"status {status!r} is not one of {', '.join(STATUSES)}")
    gate = data.get("gate")
    if gate is not None:
        gate = _dict(gate, "gate")
        passed = gate.get("passed")
        if passed is not None and not isinstance(passed, bool):
            raise Malformed("gate.passed is not true or false")
        gate = {**{k: _num(gate, k, optional=True) for k in
                   ("merged_reward", "base_reward", "best_single_reward", "margin")},
                "best_single": _str(gate, "best_single", optional=True), "passed": passed}
    return {"round": _int(data, "round"),
            "block": _int(data, "block") if data.get("block") is not None else None,
            "competition": _str(data, "competition", optional=True), "status": status,
            "reason": _str(data, "reason", optional=True), "method": _str(data, "method", optional=True),
            "inputs": [_input(i) for i in _list(data.get("inputs", []), "inputs")], "gate": gate,
            "parent": _str(data, "parent", optional=True), "published": _str(data, "published", optional=True),
            "pointer_block": _int(data, "pointer_block") if data.get("pointer_block") is not None else None}


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
        except (OSError, ValueError, RecursionError) as exc:  # Malformed and JSON errors are ValueErrors
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
