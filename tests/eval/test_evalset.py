"""The round's evaluation window and set: deterministic, outcomes known, eligibility by block."""

from datetime import date, datetime, timezone

import pytest

from cortex.data import get_source
from cortex.eval.evalset import CalendarClock, SimulatedClock, eval_set, gate_window, may_answer, seed_of, window
from cortex.protocol.competition import EvalConfig

CFG = EvalConfig(assets=("BTC", "ETH"), horizons_days=(1, 7), prompts_per_round=12, eval_window_days=20,
                 eligibility_delay_blocks=5)


@pytest.fixture(scope="module")
def frames():
    return get_source("synthetic:7").load(["BTC", "ETH"], "2023-01-01", "2023-12-31")


def test_simulated_clock_round_trip():
    clock = SimulatedClock(date(2023, 6, 1), blocks_per_day=10)
    assert clock.day(0) == date(2023, 6, 1) and clock.day(25) == date(2023, 6, 3)
    for day in (date(2023, 6, 1), date(2023, 7, 15)):
        assert clock.day(clock.first_block_of(day)) == day


def test_calendar_clock_round_trip():
    t0 = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc).timestamp()
    clock = CalendarClock(reference_block=1000, reference_time=t0, block_time=12.0)
    assert clock.day(1000) == date(2026, 3, 9)  # yesterday is the newest closed day
    first = clock.first_block_of(date(2026, 3, 10))
    assert clock.day(first) == date(2026, 3, 10) and clock.day(first - 1) == date(2026, 3, 9)


def test_eval_set_is_deterministic_and_resolved(frames):
    clock = SimulatedClock(date(2023, 6, 1), blocks_per_day=10)
    win = gate_window(clock, 600, CFG)
    assert win.end == date(2023, 7, 31) and win.start == date(2023, 7, 12)
    a = eval_set(frames, CFG, win, "0xabc", "cortex-tiny")
    b = eval_set(frames, CFG, win, "0xabc", "cortex-tiny")
    c = eval_set(frames, CFG, win, "0xdef", "cortex-tiny")
    assert [s.cutoff + s.asset for s in a] == [s.cutoff + s.asset for s in b] != [s.cutoff + s.asset for s in c]
    assert len(a) == 12
    for s in a:
        assert win.start.isoformat() <= s.cutoff <= win.end.isoformat()
        assert s.target_day.date() <= win.end and s.outcome_return is not None
    assert seed_of("0xabc", "a") != seed_of("0xabc", "b")


def test_eligibility_is_before_the_window(frames):
    clock = SimulatedClock(date(2023, 6, 1), blocks_per_day=10)
    win = gate_window(clock, 600, CFG)
    assert win == window(clock, 600, CFG.eval_window_days, CFG.eligibility_delay_blocks)  # the one window
    assert win.days[0] == win.start and win.days[-1] == win.end and len(win.days) == CFG.eval_window_days
    delay = CFG.eligibility_delay_blocks
    assert may_answer(win.eligible_before_block - 1, win.start, clock, delay)
    assert not may_answer(win.eligible_before_block, win.start, clock, delay)
    assert clock.day(win.eligible_before_block - 1 + delay) < win.start  # committed before the first day closed


def test_sync_block_is_the_rounds_first_block():
    from cortex.eval.evalset import sync_block

    assert [sync_block(b, 10) for b in (0, 9, 10, 19, 20)] == [0, 0, 10, 10, 20]
    assert sync_block(7, 0) == 7  # no interval: every block starts a round


def test_round_rows_one_draw_for_the_validator_and_a_salted_one_for_the_gate():
    from cortex.errors import CortexError
    from cortex.eval.evalset import round_rows
    from cortex.protocol.competition import CORTEX_TINY

    clock = SimulatedClock(date(2024, 3, 1), 10)
    win = gate_window(clock, 200, CORTEX_TINY.eval)
    source = get_source("synthetic")
    rows = round_rows(CORTEX_TINY, source, win, "0x" + "11" * 32)
    assert rows == round_rows(CORTEX_TINY, source, win, "0x" + "11" * 32)  # every validator draws the same
    assert len(rows) == CORTEX_TINY.eval.prompts_per_round
    assert all(win.start.isoformat() <= r["cutoff"] <= win.end.isoformat() for r in rows)
    salted = round_rows(CORTEX_TINY, source, win, "0x" + "11" * 32, salt="averager-gate")
    assert [r["prompt"] for r in salted] != [r["prompt"] for r in rows]
    early = gate_window(SimulatedClock(date(2017, 2, 10), 10), 50, CORTEX_TINY.eval)  # too little history
    with pytest.raises(CortexError, match="no resolved samples"):
        round_rows(CORTEX_TINY, source, early, "0x" + "11" * 32)
