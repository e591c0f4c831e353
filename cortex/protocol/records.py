"""Typed records that cross process boundaries: one class writes a record and the same class reads it.

A record is a frozen dataclass with a ``kind`` and a ``schema`` version (class attributes). Its JSON
form is ``{"kind": …, "schema": …, <fields>}``; ``from_json`` refuses another kind, another schema,
unknown keys and missing required fields with :class:`RecordError`, so a reader never guesses the
shape of what a writer meant. Nested records and lists/dicts of them are converted by their field
types. Readers of files written by other processes (score tables, averager rounds, manifests, run
metrics) treat them as untrusted input: ``RecordError`` is the one error to catch.

Each concrete record lives beside the code that owns its meaning and subclasses :class:`Record`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from cortex.atomic import write_json
from cortex.errors import CortexError

R = TypeVar("R", bound="Record")


class RecordError(CortexError):
    """A record file or object that is not what its class writes."""


def _convert(tp: Any, value: Any, where: str) -> Any:
    """``value`` (decoded JSON) as type ``tp``: nested records are rebuilt, plain values type-checked."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, where)
            except RecordError as exc:
                errors.append(str(exc))
        raise RecordError(f"{where}: {value!r:.80} fits none of {tp}")
    if isinstance(tp, type) and issubclass(tp, Record):
        return tp.from_json(value, where=where)
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        if not isinstance(value, list):
            raise RecordError(f"{where}: expected a list, got {type(value).__name__}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        items = [_convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin in (dict, typing.Mapping) or tp is dict:
        if not isinstance(value, dict):
            raise RecordError(f"{where}: expected an object, got {type(value).__name__}")
        args = typing.get_args(tp)
        inner = args[1] if len(args) == 2 else Any
        return {str(k): _convert(inner, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecordError(f"{where}: expected a number, got {value!r:.80}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecordError(f"{where}: expected an integer, got {value!r:.80}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise RecordError(f"{where}: expected a string, got {value!r:.80}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise RecordError(f"{where}: expected true or false, got {value!r:.80}")
        return value
    return value


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
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields) - {"kind", "schema"})
        if unknown:
            raise RecordError(f"{where}: unknown keys {unknown} in a {cls.kind} record")
        values = {}
        for name, f in fields.items():
            if name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise RecordError(f"{where}: the {cls.kind} record has no {name!r}")
                continue
            values[name] = _convert(hints[name], data[name], f"{where}.{name}")
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise RecordError(f"{where}: {exc}") from None

    def write(self, path: str | Path) -> None:
        """Atomically, as readable JSON."""
        write_json(path, self.to_json())

    @classmethod
    def read(cls: type[R], path: str | Path) -> R:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RecordError(f"cannot read {cls.kind} {path}: {exc}") from None
        return cls.from_json(data, where=str(path))
