"""Plain data (decoded YAML or JSON) into frozen dataclasses, strictly: the one loader of the project.

Training configs (``miner.config``), competition definitions (``cortex.protocol.competition``) and
typed records (``cortex.protocol.records``) are all read through :func:`build`. It walks the
dataclass's field types and checks every value: an unknown key is an error that names the closest
known one ("did you mean"), a missing required key is named with its dotted path, a value of the
wrong type (or a value outside a ``Literal``) says what was expected, and every problem is reported
at once, in one line. The only conversions: an integer where a float is expected, a list where a
tuple is expected.

:func:`read_yaml` reads a file with YAML 1.2's number rules: PyYAML follows YAML 1.1, which reads
``2e-4`` (no dot) as a string, and people write learning rates that way.

Why not a schema library (pydantic, jsonschema): the configs are plain frozen dataclasses whose
``__post_init__`` holds the cross-field rules, and the messages must name YAML keys the way users
wrote them; this module is the ~150 lines that bridge the two without a second model of each type.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import json
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Mapping

import yaml

from cortex.errors import CortexError

_EXPECTED = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string (quote it in YAML)"}


def is_int(value: object, minimum: int | None = None) -> bool:
    """An integer (never a bool), at least ``minimum`` when given."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    return ok and (minimum is None or value >= minimum)  # type: ignore[operator]


def is_number(value: object) -> bool:
    """A finite int or float (never a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _at(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)


def _say(where: str, message: str) -> str:
    return f"{where}: {message}" if where else message


def unknown_key(key: object, known: list[str], where: str = "", doc: str | None = None) -> str:
    """The message for an unknown key: the closest known key, else where the keys are listed."""
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    if close:
        hint = f" (did you mean {close[0]!r}?)"
    else:
        hint = f" ({doc} lists the keys)" if doc else f" (known: {', '.join(known)})"
    return _say(where, f"unknown key {key!r}{hint}")


class _Build:
    """One :func:`build` call: the options and the problems found so far."""

    def __init__(self, refused: Mapping[str, str], doc: str | None) -> None:
        self.refused, self.doc, self.problems = refused, doc, []

    def dataclass(self, cls: type, data: object, where: str, top: bool = False) -> Any:
        if not isinstance(data, dict):
            self.problems.append(_say(where, f"expected a mapping, got {type(data).__name__}"))
            return None
        known = {f.name: f for f in dataclasses.fields(cls) if f.init}
        hints = typing.get_type_hints(cls)
        before, kwargs = len(self.problems), {}
        for key, value in data.items():
            if top and key in self.refused:
                self.problems.append(_say(_at(where, key), f"not supported: {self.refused[key]}"))
            elif key not in known:
                self.problems.append(unknown_key(key, list(known), where, self.doc if top else None))
            else:
                kwargs[key] = self.value(hints[key], value, _at(where, key))
        for name, f in known.items():
            if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                self.problems.append(_say(_at(where, name), "required key is missing"))
        if len(self.problems) > before:
            return None
        try:
            return cls(**kwargs)
        except (CortexError, ValueError, TypeError) as exc:  # the class's own rules (__post_init__)
            self.problems.append(_say(where, str(exc)))
            return None

    def value(self, hint: Any, value: object, where: str) -> Any:
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if hint is Any:
            return value
        if origin is typing.Literal:
            if value not in args or isinstance(value, bool) != isinstance(args[0], bool):
                self.problems.append(_say(where, f"expected one of {', '.join(map(repr, args))}, got {value!r:.80}"))
                return None
            return value
        if origin in (typing.Union, types.UnionType):
            options = [a for a in args if a is not type(None)]
            if value is None and len(options) < len(args):
                return None
            if len(options) == 1:
                return self.value(options[0], value, where)
            for option in options:  # the first option the value fits
                trial = _Build(self.refused, self.doc)
                out = trial.value(option, value, where)
                if not trial.problems:
                    return out
            self.problems.append(_say(where, f"{value!r:.80} fits none of {' | '.join(map(_name, args))}"))
            return None
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            reader = getattr(hint, "from_json", None)
            if reader is None:
                return self.dataclass(hint, value, where)
            try:  # a typed record checks its own header (kind, schema) and fields
                return reader(value, where=where)
            except CortexError as exc:
                self.problems.append(str(exc))
                return None
        if origin in (tuple, list, collections.abc.Sequence) or hint in (tuple, list):
            if not isinstance(value, list):
                self.problems.append(_say(where, f"expected a list, got {value!r:.80}"))
                return None
            inner = args[0] if args else Any
            items = [self.value(inner, item, f"{where}[{i}]") for i, item in enumerate(value)]
            return tuple(items) if origin is tuple or hint is tuple else items
        if origin in (dict, collections.abc.Mapping) or hint is dict:
            if not isinstance(value, dict):
                self.problems.append(_say(where, f"expected a mapping, got {value!r:.80}"))
                return None
            inner = args[1] if len(args) == 2 else Any
            out = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    self.problems.append(_say(where, f"key {key!r} is not a string"))
                    continue
                out[key] = self.value(inner, item, _at(where, key))
            return out
        checks = {bool: isinstance(value, bool), int: is_int(value), float: is_number(value),
                  str: isinstance(value, str)}
        if hint not in checks:
            self.problems.append(_say(where, f"unsupported field type {hint!r}"))
            return None
        if not checks[hint]:
            self.problems.append(_say(where, f"expected {_EXPECTED[hint]}, got {value!r:.80}"))
            return None
        return float(value) if hint is float else value  # type: ignore[arg-type]


def _name(tp: Any) -> str:
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def build(cls: type, data: object, where: str = "", *, error: type[CortexError] = CortexError,
          refused: Mapping[str, str] | None = None, doc: str | None = None) -> Any:
    """Dataclass ``cls`` from plain ``data``; every problem in one ``error``, each named by its key path.

    ``where`` prefixes the key paths (``competitions[0].eval``); ``refused`` maps top-level keys that
    are deliberately not taken to the reason; ``doc`` names where the keys are listed.
    """
    run = _Build(refused or {}, doc)
    out = run.dataclass(cls, data, where, top=True)
    if run.problems:
        raise error("; ".join(run.problems))
    return out


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats (``2e-4``, ``1E6``: numbers, not strings)."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


def read_data(path: str | Path, *, error: type[CortexError] = CortexError, what: str = "file", hint: str = "") -> Any:
    """A YAML (or ``.json``) file's data; a missing, unreadable or malformed file is one ``error``
    (``hint`` is added to the message of a file that cannot be read)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix.lower() == ".json" else parse_yaml(text)
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}{hint}") from None
    except (UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise error(f"{path}: cannot read {what}: not valid {kind}: {detail}") from None
