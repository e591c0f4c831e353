"""Typed records that cross process boundaries: one class writes a record and the same class reads it.

A record is a frozen dataclass with a ``kind`` and a ``schema`` version (class attributes). Its JSON
form is ``{"kind": …, "schema": …, <fields>}``; ``from_json`` refuses another kind, another schema,
unknown keys and missing required fields with :class:`RecordError`, so a reader never guesses the
shape of what a writer meant. Fields are read by :func:`cortex.typed.build`, the loader the configs
use too: nested records and lists/dicts of them by their field types, every problem named by its key
path, ints never taken for bools, floats finite (``write`` refuses NaN and infinities). Readers of
files written by other processes (score tables, averager rounds, manifests, run metrics) treat them
as untrusted input: ``RecordError`` is the one error to catch (``read`` also refuses a file over
``MAX_BYTES``).

Each concrete record lives beside the code that owns its meaning and subclasses :class:`Record`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from cortex.atomic import write_text
from cortex.errors import CortexError
from cortex.typed import build

R = TypeVar("R", bound="Record")
MAX_BYTES = 64 << 20  # a record file larger than this is refused unread


class RecordError(CortexError):
    """A record file or object that is not what its class writes."""


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


@dataclasses.dataclass(frozen=True)
class Record:
    """Base of every typed record. Subclasses set ``kind`` and ``schema`` and declare their fields."""

    kind: ClassVar[str] = "record"
    schema: ClassVar[int] = 1

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "schema": self.schema}
        for f in dataclasses.fields(self):
            out[f.name] = _plain(getattr(self, f.name))
        return out

    def plain(self) -> dict[str, Any]:
        """The fields alone (no ``kind``/``schema``), as plain data."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls: type[R], data: Any, *, where: str | None = None) -> R:
        where = where or cls.kind
        if not isinstance(data, dict):
            raise RecordError(f"{where}: expected a {cls.kind} object, got {type(data).__name__}")
        if data.get("kind", cls.kind) != cls.kind:
            raise RecordError(f"{where}: this is a {data.get('kind')!r} record, not a {cls.kind!r}")
        if data.get("schema", cls.schema) != cls.schema:
            raise RecordError(f"{where}: {cls.kind} schema {data.get('schema')!r} is not {cls.schema}: "
                              "written by another version of cortex")
        body = {k: v for k, v in data.items() if k not in ("kind", "schema")}
        return build(cls, body, where, error=RecordError)

    def write(self, path: str | Path) -> None:
        """Atomically, as readable JSON (NaN and infinities are refused: JSON has no such numbers)."""
        try:
            text = json.dumps(self.to_json(), indent=1, sort_keys=True, allow_nan=False)
        except ValueError as exc:
            raise RecordError(f"{self.kind} record for {path}: {exc} (write null for a missing number)") from None
        write_text(path, text + "\n")

    @classmethod
    def read(cls: type[R], path: str | Path) -> R:
        path = Path(path)
        try:
            if path.stat().st_size > MAX_BYTES:
                raise ValueError(f"larger than {MAX_BYTES >> 20} MiB")
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:  # JSON and decoding errors are ValueErrors
            raise RecordError(f"cannot read {cls.kind} {path}: {exc}") from None
        return cls.from_json(data, where=str(path))
