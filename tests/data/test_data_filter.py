"""The quality filter: unparseable, duplicate and low-scoring traces go, with counts and reasons."""

from types import SimpleNamespace

from cortex.data import build_samples
from cortex.data.filter import filter_traces
from cortex.data.prompts import completion, format_answer
from cortex.data.sources import SyntheticSource

FRAMES = SyntheticSource(seed=13).load(["BTC", "ETH"], "2023-01-01", "2023-08-31")
SAMPLES = build_samples(FRAMES, ["BTC", "ETH"], [7], "2023-06-01", "2023-06-03")  # 6 samples


def right_answer(s, reasoning="The trend and the flow are both read from the table. " * 3):
    p = 0.9 if s.outcome_direction == "up" else 0.1
    return completion(reasoning + f"Overall I lean {s.outcome_direction}.",
                      format_answer(s.asset, s.horizon_days, p, s.outcome_return * 100))


def test_reasons_with_the_real_reward():
    texts = [right_answer(s) for s in SAMPLES]
    texts[1] = "I think it goes up."  # no tags
    texts[2] = texts[0]  # the same trace again, for another BTC prompt
    texts[3] = None  # the teacher failed
    wrong = SAMPLES[4]
    went_up = wrong.outcome_direction == "up"
    texts[4] = completion("Overall I lean the other way.",
                          format_answer(wrong.asset, 7, 0.02 if went_up else 0.98, -50 if went_up else 50))
    kept, report = filter_traces(SAMPLES, texts, min_reward=0.5)
    assert [k.sample for k in kept] == [SAMPLES[0], SAMPLES[5]]
    assert dict(report.dropped) == {"unparseable": 1, "teacher_error": 1, "duplicate": 1, "low_reward": 1}
    assert report.total == 6 and report.kept == 2 and report.pass_rate == 2 / 6
    assert "no <answer>" in report.examples["unparseable"]
    assert report.as_dict()["dropped"]["low_reward"] == 1 and "kept 2/6" in report.summary()
    assert all(k.reward >= 0.5 for k in kept) and report.mean_reward_kept >= 0.5


def test_min_reward_none_keeps_every_parseable_trace():
    texts = [right_answer(s) for s in SAMPLES]
    texts[0] = completion("Overall I lean up.", format_answer(SAMPLES[0].asset, 7, 0.0, -100.0))
    kept, report = filter_traces(SAMPLES, texts, min_reward=None)
    assert report.kept == 6 and not report.dropped


def test_stand_in_scorer():
    calls = []

    def fake_score(text, row):
        calls.append(row["cutoff"])
        return SimpleNamespace(total=float(len(text) % 3), parse_error=None if "<answer>" in text else "no answer")

    texts = [right_answer(s) for s in SAMPLES]
    kept, report = filter_traces(SAMPLES, texts, min_reward=1.0, score=fake_score)
    assert len(calls) == 6 and report.kept + report.dropped["low_reward"] == 6
