"""The base's live record: pure numbers from ledger entries (cortex.leaderboard.live), and the ledgers,
outcomes and analyst forecasts it reads (cortex.leaderboard.ledgers) from a real validator ledger."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cortex.data import get_source, outcome
from cortex.leaderboard.ledgers import ledger_entries, live_records, market_facts
from cortex.leaderboard.live import (
    ANALYST,
    CONSTANT,
    Resolved,
    base_records,
    brier,
    calibration,
    hit,
    resolved_answers,
    window_record,
)
from cortex.protocol.ledger import LedgerEntry, Question
from validator.ledger import Ledger, entry_for, scored

D0 = date(2024, 3, 1)


def _r(day: int, p: float | None, up: bool, reward: float = 0.0, analyst: float | None = None, q: str = "") -> Resolved:
    return Resolved(q or f"q{day}-{p}-{up}", D0 + timedelta(days=day), 1, p, reward, up, analyst)


def test_brier_hit_and_calibration():
    assert brier(0.8, True) == pytest.approx(0.04) and brier(0.8, False) == pytest.approx(0.64)
    assert brier(None, True) == 0.25  # an unparsed answer counts as no information
    assert hit(0.5, True) and not hit(0.5, False) and not hit(None, True)
    bins = calibration([(0.1, False), (0.15, True), (0.9, True), (0.95, True), (0.5, False)], bins=5)
    assert [(b["low"], b["n"]) for b in bins] == [(0.0, 2), (0.4, 1), (0.8, 2)]
    assert bins[0]["mean_p"] == pytest.approx(0.125) and bins[0]["frequency_up"] == 0.5
    assert bins[2]["frequency_up"] == 1.0
    assert calibration([(1.0, True)], bins=5)[0]["high"] == 1.0  # p = 1 falls in the last bin


def test_window_record_against_both_baselines():
    answers = [_r(0, 0.8, True, 1.0, 0.6), _r(0, None, False, -1.0, 0.4), _r(1, 0.3, False, 0.5, 0.7),
               _r(2, 0.6, False, 0.0, None), _r(40, 0.9, True, 1.0, 0.5)]
    rec = window_record(answers, as_of=D0 + timedelta(days=2), days=30)
    assert (rec["questions"], rec["days"], rec["from"], rec["to"]) == (4, 3, "2024-03-01", "2024-03-03")
    assert rec["parse_rate"] == 0.75
    assert rec["brier"] == pytest.approx((0.04 + 0.25 + 0.09 + 0.36) / 4)
    assert rec["accuracy"] == 0.5
    assert rec["reward"] == pytest.approx((0.0 + 0.5 + 0.0) / 3)  # the mean of the daily means
    constant = rec["versus"][CONSTANT]
    assert constant["brier"] == 0.25 and constant["accuracy"] == 0.25  # 0.5 reads as up
    daily = [((0.25 - 0.04) + 0.0) / 2, 0.25 - 0.09, 0.25 - 0.36]
    assert constant["brier_gain"] == pytest.approx(sum(daily) / 3)
    assert constant["brier_gain_low"] < constant["brier_gain"] < constant["brier_gain_high"]
    analyst = rec["versus"][ANALYST]
    assert analyst["questions"] == 3  # only where the analyst forecast
    assert analyst["brier"] == pytest.approx((0.16 + 0.16 + 0.49) / 3)
    assert window_record(answers, as_of=D0 - timedelta(days=1), days=30) is None
    only = window_record([_r(0, 0.7, True)], as_of=D0, days=30)
    assert only["versus"][ANALYST] is None and only["versus"][CONSTANT]["days"] == 1


def _entry(model: str, day: str, asset: str, reward: float | None, p_up=None, parse_error=None) -> LedgerEntry:
    q = Question("cortex-tiny", asset, day, 1)
    answer = None if p_up is None else {"asset": asset, "horizon_days": 1, "direction": "up", "p_up": p_up,
                                         "return_pct": 1.0}
    return LedgerEntry(model=model, question=q.id, competition=q.competition, asset=asset, cutoff=day,
                       horizon_days=1, reward=reward, parts={"answer": answer, "parse_error": parse_error})


def test_resolved_answers_and_records_per_base():
    entries = [_entry("b@1", "2024-03-01", "BTC", 0.5, 0.7), _entry("b@1", "2024-03-02", "BTC", -1.0, None, "no answer"),
               _entry("b@1", "2024-03-03", "BTC", None, 0.6),  # not resolved yet
               _entry("b@1", "2024-03-04", "ETH", 0.2, 1.7),  # a p_up outside [0, 1] is not a forecast
               _entry("m@9", "2024-03-01", "BTC", 0.9, 0.9),  # not a base
               _entry("b@2", "2024-03-05", "BTC", 0.1, 0.4)]
    outcomes = {e.question: True for e in entries}
    answers = resolved_answers(entries, "b@1", outcomes, {entries[0].question: 0.55})
    assert [(r.day.isoformat(), r.p_up, r.analyst) for r in answers] == [
        ("2024-03-01", 0.7, 0.55), ("2024-03-02", None, None), ("2024-03-04", None, None)]
    records = base_records(entries, ["b@1", "b@2", "b@3"], outcomes)
    assert [(r["model"], r["current"], r["last_day"]) for r in records] == [("b@1", False, "2024-03-04"),
                                                                           ("b@2", False, "2024-03-05")]
    assert records[0]["windows"]["30"]["questions"] == 3 and records[0]["windows"]["90"]["questions"] == 3
    assert base_records(entries, ["b@1", "b@2"], outcomes)[1]["current"] is True


def test_live_records_from_a_validator_ledger(tmp_path):
    source = get_source("synthetic")
    days = [(date(2024, 3, 1) + timedelta(days=k)).isoformat() for k in range(6)]
    with Ledger(tmp_path / "v0" / "ledger.sqlite") as ledger:
        entries = [entry_for(base, Question("cortex-tiny", asset, day, 1), completion="x")
                   for base, span in (("cortex/tiny-llama@old", days[:3]), ("cortex/tiny-llama@new", days[3:]))
                   for day in span for asset in ("BTC", "ETH")]
        ledger.add(entries + [entry_for("miner/x@1", Question("cortex-tiny", "BTC", days[0], 1))])
        ledger.set_rewards(scored(e, 0.25, {"answer": {"p_up": 0.6}, "parse_error": None}) for e in entries[:-1])
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "ledger.sqlite").write_text("not a database")  # skipped with a warning
    read = ledger_entries([tmp_path], {"cortex/tiny-llama@old", "cortex/tiny-llama@new"})
    assert len(read) == 12 and {e.model for e in read} == {"cortex/tiny-llama@old", "cortex/tiny-llama@new"}

    outcomes, analyst = market_facts(source, read)
    frames = source.load(["BTC", "ETH"], "2024-01-01", "2024-04-01")
    for e in read:
        assert outcomes[e.question] == (outcome(frames[e.asset], e.cutoff, 1)[1] == "up")
        assert 0.0 < analyst[e.question] < 1.0

    tables = [{"sync_block": b, "competitions": {"cortex-tiny": {"base": f"cortex/tiny-llama@{key}"}}}
              for b, key in ((10, "old"), (20, "new"))]
    live = live_records(tables, [tmp_path], source)["cortex-tiny"]
    assert [(r["model"], r["current"]) for r in live] == [("cortex/tiny-llama@old", False), ("cortex/tiny-llama@new", True)]
    new = live[1]["windows"]["30"]
    assert (new["questions"], new["days"], new["from"]) == (5, 3, days[3])  # the last answer is still unscored
    assert new["parse_rate"] == 1.0 and new["reward"] == pytest.approx(0.25)
    assert new["versus"][ANALYST]["questions"] == 5
