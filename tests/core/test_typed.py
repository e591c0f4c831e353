"""cortex.typed: the one loader of plain data into dataclasses (training configs, competitions, records)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from cortex.errors import CortexError
from cortex.typed import build, is_int, is_number, parse_yaml, read_data


@dataclass(frozen=True)
class Inner:
    rank: int
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise CortexError(f"rank must be >= 1, got {self.rank}")


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner
    tags: tuple[str, ...] = ()
    extra: dict[str, float] = field(default_factory=dict)
    limit: int | None = None


def test_nested_values_lists_and_optionals():
    out = build(Outer, {"name": "a", "inner": {"rank": 2, "scale": 3}, "tags": ["x", "y"], "extra": {"k": 1}})
    assert out == Outer("a", Inner(2, 3.0), ("x", "y"), {"k": 1.0}, None)
    assert isinstance(out.inner.scale, float) and isinstance(out.tags, tuple)


def test_every_problem_in_one_line_with_its_key_path():
    with pytest.raises(CortexError) as err:
        build(Outer, {"nme": "a", "inner": {"rank": "2", "scal": 1}, "tags": "x", "limit": True}, "f.yaml")
    text = str(err.value)
    assert "\n" not in text
    for part in ("f.yaml: unknown key 'nme' (did you mean 'name'?)", "f.yaml.inner: unknown key 'scal' (did you mean 'scale'?)",
                 "f.yaml.tags: expected a list", "f.yaml.limit: expected an integer, got True",
                 "f.yaml.name: required key is missing"):
        assert part in text


def test_class_rules_are_named_where_they_apply_and_refused_keys_say_why():
    with pytest.raises(CortexError, match=r"^inner: rank must be >= 1, got 0$"):
        build(Outer, {"name": "a", "inner": {"rank": 0}})
    with pytest.raises(CortexError, match="template: not supported: never"):
        build(Outer, {"name": "a", "inner": {"rank": 1}, "template": 1}, refused={"template": "never"})


class Special(CortexError):
    pass


def test_the_callers_error_class_and_no_silent_conversions():
    for bad in ({"name": 1, "inner": {"rank": 1}}, {"name": "a", "inner": {"rank": 1.0}},
                {"name": "a", "inner": {"rank": 1, "scale": float("nan")}}, {"name": "a", "inner": [1]},
                {"name": "a", "inner": {"rank": 1}, "extra": {"k": "1"}}, ["not", "a", "mapping"]):
        with pytest.raises(Special):
            build(Outer, bad, error=Special)


def test_yaml_reads_numbers_the_way_people_write_them(tmp_path):
    data = parse_yaml("lr: 2e-4\nn: 7\nf: 1.5\nbig: 1E6\nv: v1.2\nword: 3e\nneg: -5e3\n")
    assert data == {"lr": 2e-4, "n": 7, "f": 1.5, "big": 1e6, "v": "v1.2", "word": "3e", "neg": -5000.0}
    assert isinstance(data["n"], int)
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    with pytest.raises(Special, match=r"bad\.yaml: cannot read the thing: not valid YAML"):
        read_data(tmp_path / "bad.yaml", error=Special, what="the thing")
    with pytest.raises(Special, match=r"cannot read the thing: .*; try again"):
        read_data(tmp_path / "absent.yaml", error=Special, what="the thing", hint="; try again")
    (tmp_path / "a.json").write_text('{"x": 1e-4}')
    assert read_data(tmp_path / "a.json") == {"x": 1e-4}


def test_value_checkers():
    assert is_int(3) and is_int(3, 3) and not is_int(2, 3) and not is_int(True) and not is_int(3.0)
    assert is_number(1) and is_number(0.5) and not is_number(True) and not is_number(float("inf"))
    assert not is_number("1")


@dataclass(frozen=True)
class Choice:
    status: Literal["on", "off"] = "on"
    level: Literal[1, 2] = 1


def test_literal_fields_take_only_their_values():
    assert build(Choice, {"status": "off", "level": 2}) == Choice("off", 2)
    with pytest.raises(CortexError) as err:
        build(Choice, {"status": "exploded", "level": True})
    assert "status: expected one of 'on', 'off', got 'exploded'" in str(err.value)
    assert "level: expected one of 1, 2, got True" in str(err.value)
