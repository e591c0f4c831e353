"""cortex.protocol.records: the base of every typed record (kind, schema, strict reading, atomic writing)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from cortex.protocol import records as R
from cortex.protocol.records import Record, RecordError


@dataclass(frozen=True)
class Leaf(Record):
    kind = "leaf"
    schema = 2

    name: str
    count: int = 0
    share: float | None = None


@dataclass(frozen=True)
class Tree(Record):
    kind = "tree"
    schema = 1

    root: Leaf
    leaves: list[Leaf] = field(default_factory=list)
    by_name: dict[str, Leaf] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)
    pair: tuple[int, ...] = ()
    note: str | None = None


TREE = Tree(Leaf("r", 1, 0.5), [Leaf("a"), Leaf("b", 2, None)], {"c": Leaf("c", 3, 1.0)}, {"ok": True}, (1, 2))


def test_round_trip_through_a_file(tmp_path):
    TREE.write(tmp_path / "t.json")
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["kind"] == "tree" and data["schema"] == 1 and data["root"]["kind"] == "leaf"
    back = Tree.read(tmp_path / "t.json")
    assert back == TREE and isinstance(back.pair, tuple) and isinstance(back.leaves, list)
    assert Tree.from_json(TREE.to_json()) == TREE


def test_optional_fields_take_their_defaults_and_null():
    assert Tree.from_json({"root": {"name": "x"}}) == Tree(Leaf("x"))
    assert Leaf.from_json({"name": "x", "share": None}).share is None
    assert Leaf.from_json({"name": "x", "share": 1}).share == 1.0  # an int where a float is expected


@pytest.mark.parametrize("data, message", [
    ({"kind": "leaf", "name": "x", "colour": "red"}, r"leaf: unknown key 'colour'"),
    ({"kind": "stem", "name": "x"}, r"this is a 'stem' record, not a 'leaf'"),
    ({"schema": 1, "name": "x"}, r"leaf schema 1 is not 2: written by another version"),
    ({"count": 1}, r"leaf\.name: required key is missing"),
    ({"name": "x", "count": True}, r"leaf\.count: expected an integer, got True"),
    ({"name": "x", "count": 1.0}, r"leaf\.count: expected an integer"),
    ({"name": "x", "share": "0.5"}, r"leaf\.share: expected a finite number"),
    ({"name": "x", "share": float("nan")}, r"leaf\.share: expected a finite number"),
    ([1, 2], r"expected a leaf object, got list"),
])
def test_what_a_writer_did_not_write_is_refused(data, message):
    with pytest.raises(RecordError, match=message):
        Leaf.from_json(data)


def test_nested_problems_name_their_path():
    bad = TREE.to_json()
    bad["leaves"][1]["count"] = "2"
    bad["by_name"]["c"]["kind"] = "tree"
    bad["flags"]["ok"] = 1  # an int is not a bool
    with pytest.raises(RecordError) as err:
        Tree.from_json(bad)
    text = str(err.value)
    assert "tree.leaves[1].count: expected an integer" in text
    assert "tree.by_name.c: this is a 'tree' record, not a 'leaf'" in text
    assert "tree.flags.ok: expected true or false, got 1" in text
    with pytest.raises(RecordError, match=r"tree\.root: expected a leaf object"):
        Tree.from_json({"root": ["x"]})


def test_hostile_files_give_one_clear_error(tmp_path, monkeypatch):
    cases = {"garbage.json": "{not json", "deep.json": "[" * 100_000 + "]" * 100_000,
             "binary.json": b"\xff\xfe\x00".decode("latin-1")}
    for name, text in cases.items():
        (tmp_path / name).write_text(text, encoding="latin-1")
        with pytest.raises(RecordError, match=f"cannot read tree .*{name}"):
            Tree.read(tmp_path / name)
    with pytest.raises(RecordError, match="cannot read tree"):
        Tree.read(tmp_path / "absent.json")
    monkeypatch.setattr(R, "MAX_BYTES", 10)
    TREE.write(tmp_path / "big.json")
    with pytest.raises(RecordError, match="larger than"):
        Tree.read(tmp_path / "big.json")


def test_write_refuses_numbers_json_cannot_hold(tmp_path):
    with pytest.raises(RecordError, match="write null"):
        Leaf("x", share=float("inf")).write(tmp_path / "l.json")
    assert not (tmp_path / "l.json").exists()


def test_plain_is_the_fields_alone():
    assert Leaf("x", 2).plain() == {"name": "x", "count": 2, "share": None}
    assert TREE.plain()["root"] == TREE.root.to_json()  # nested records keep their header
