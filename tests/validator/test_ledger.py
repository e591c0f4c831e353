"""The outcome ledger (validator.ledger): one entry per (model, question), scored once, pruned, exported, checked."""

import sqlite3

import pytest

from cortex.protocol.ledger import LedgerEntry, Question
from validator.ledger import Ledger, LedgerError, LedgerExport, entry_for, scored

COMP = "cortex-test"


def questions(day: str, n: int = 3) -> list[Question]:
    return [Question(COMP, asset, day, 1) for asset in ("BTC", "ETH", "SOL", "NEAR")[:n]]


def test_answers_are_stored_once_and_only_the_missing_ones_are_reported(tmp_path):
    qs = questions("2024-03-01") + questions("2024-03-02")
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        assert ledger.missing("a@1", qs) == qs
        assert ledger.add([entry_for("a@1", q, completion=f"answer {q.id}", new_tokens=5, block=7) for q in qs[:4]]) == 4
        assert ledger.missing("a@1", qs) == qs[4:] and ledger.missing("b@1", qs) == qs
        again = [entry_for("a@1", qs[0], completion="a different answer", block=9)]
        assert ledger.add(again) == 0  # (model, question) is unique: the first answer stays
        entries = ledger.entries(COMP, "2024-03-01", "2024-03-02")
    assert len(entries) == 4 and entries[0].completion == f"answer {qs[0].id}" and entries[0].generated_block == 7
    assert all(isinstance(e, LedgerEntry) and e.reward is None for e in entries)


def test_a_resolved_answer_is_scored_once_and_failures_never(tmp_path):
    qs = questions("2024-03-01")
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.add([entry_for("a@1", qs[0], completion="x"), entry_for("a@1", qs[1], reason="time_budget"),
                entry_for("a@1", Question(COMP, "BTC", "2024-03-05", 1), completion="y")])
    todo = ledger.unscored(COMP, "2024-03-02")  # 03-01's outcomes are known on 03-02, 03-05's are not
    assert [e.question for e in todo] == [qs[0].id]
    assert ledger.set_rewards([scored(todo[0], 0.25, {"accuracy": 0.5, "parse_error": None})]) == 1
    assert ledger.set_rewards([scored(todo[0], 0.99, {})]) == 0  # an outcome counts once
    assert [e.cutoff for e in ledger.unscored(COMP, "2024-03-10")] == ["2024-03-05"]
    (entry,) = [e for e in ledger.entries(COMP, "2024-03-01", "2024-03-01") if e.reward is not None]
    assert (entry.reward, entry.parts) == (0.25, {"accuracy": 0.5, "parse_error": None})


def test_prune_keeps_the_window_and_export_replays_it(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
        ledger.add([entry_for("a@1", q, completion="x") for q in questions(day)])
    assert ledger.prune(COMP, "2024-03-02") == 3 and ledger.prune("other", "2024-03-09") == 0
    ledger.add([entry_for("a@1", Question("other", "BTC", "2024-03-01", 1), completion="x")])
    assert ledger.export(tmp_path / "export.json", COMP, "hotkey") == 6
    export = LedgerExport.read(tmp_path / "export.json")
    assert export.entries == ledger.entries(COMP, "2024-03-02", "2024-03-03") and export.validator == "hotkey"
    assert ledger.export(tmp_path / "all.json") == 7 and LedgerExport.read(tmp_path / "all.json").competition is None


def test_a_damaged_entry_or_database_is_a_clear_error(tmp_path):
    path = tmp_path / "ledger.sqlite"
    Ledger(path).add([entry_for("a@1", q, completion="x") for q in questions("2024-03-01")])
    db = sqlite3.connect(path)
    db.execute("UPDATE entries SET horizon_days = 'seven'")
    db.commit()
    db.close()
    with pytest.raises(LedgerError, match="damaged entry.*move the file aside"):
        Ledger(path).entries(COMP, "2024-03-01", "2024-03-01")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match="not a usable SQLite database"):
        Ledger(junk)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("PRAGMA user_version=99")
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE entries (x)")
    db.execute("PRAGMA user_version=99")
    db.commit()
    with pytest.raises(LedgerError, match="schema 99"):
        Ledger(other)


def test_the_database_is_in_wal_mode(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    assert ledger.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
