"""Live questions (validator.questions): which questions a day defines, who may answer them, when they resolve."""

from dataclasses import replace
from datetime import date

from cortex.eval.evalset import SimulatedClock, eligible_before, may_answer
from cortex.protocol.competition import CORTEX_TINY, EvalConfig, SkillConfig
from validator import questions as Q

CLOCK = SimulatedClock(date(2024, 1, 1), 10)  # one market day closes every 10 blocks


def competition(per_day: int = 64, delay: int = 5, window: int = 10):
    ev = EvalConfig(assets=("BTC", "ETH", "SOL", "NEAR"), horizons_days=(1, 7), prompts_per_round=8,
                    eval_window_days=30, eligibility_delay_blocks=delay)
    return replace(CORTEX_TINY, eval=ev, scoring=SkillConfig(window_days=window, min_days=3, questions_per_day=per_day))


def test_a_day_asks_every_asset_and_horizon_when_uncapped():
    day = Q.day_questions(competition(), date(2024, 2, 1))
    assert len(day) == 8 and len(set(day)) == 8
    assert {(q.asset, q.horizon_days) for q in day} == {(a, h) for a in ("BTC", "ETH", "SOL", "NEAR") for h in (1, 7)}
    assert all(q.cutoff == "2024-02-01" and q.competition == CORTEX_TINY.id for q in day)


def test_a_capped_day_is_a_subset_seeded_by_competition_and_day_only():
    comp = competition(per_day=3)
    a = Q.day_questions(comp, date(2024, 2, 1))
    assert len(a) == 3 and a == Q.day_questions(comp, date(2024, 2, 1))  # every validator, any time
    assert set(a) <= set(Q.day_questions(competition(), date(2024, 2, 1)))
    days = [tuple((q.asset, q.horizon_days) for q in Q.day_questions(comp, date(2024, 2, d))) for d in range(1, 15)]
    assert len(set(days)) > 1  # the subset changes from day to day
    other = replace(comp, id="cortex-other")
    picks = [tuple((q.asset, q.horizon_days) for q in Q.day_questions(other, date(2024, 2, d))) for d in range(1, 15)]
    assert picks != days  # and with the competition


def test_the_window_is_the_last_closed_days():
    days = Q.scoring_window(CLOCK, 305, competition(window=10)).days  # block 305: day 2024-01-31 has closed
    assert days[-1] == date(2024, 1, 31) and days[0] == date(2024, 1, 22) and len(days) == 10
    asked = [q for day in days for q in Q.day_questions(competition(window=10), day)]  # as the round asks them
    assert len(asked) == 80 and [q.cutoff for q in asked] == sorted(q.cutoff for q in asked)


def test_a_model_answers_only_days_that_closed_after_its_commitment_and_delay():
    comp = competition(delay=5)
    day = date(2024, 1, 21)  # closes at block 200
    q = Q.day_questions(comp, day)[0]
    assert eligible_before(CLOCK, day, 5) == 195 and q.cutoff == day.isoformat()
    assert may_answer(194, day, CLOCK, 5)
    assert not may_answer(195, day, CLOCK, 5) and not may_answer(250, day, CLOCK, 5)


def test_a_question_resolves_when_cutoff_plus_horizon_has_closed():
    comp = competition()
    one, seven = (next(q for q in Q.day_questions(comp, date(2024, 1, 21)) if q.horizon_days == h) for h in (1, 7))
    assert (one.resolves, seven.resolves) == ("2024-01-22", "2024-01-28")  # the ledger scores it from that day
    assert CLOCK.first_block_of(date.fromisoformat(one.resolves)) == 210  # 01-22 closes at block 210
    assert CLOCK.day(209) < date.fromisoformat(one.resolves) == CLOCK.day(210)
