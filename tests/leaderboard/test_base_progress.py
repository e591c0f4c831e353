"""The base's progress on a fixed benchmark: the question file, the score of one base's answers, the
per-round points the leaderboard and the localnet summary show, and their charts."""

from __future__ import annotations

import json

import pytest

from cortex.errors import CortexError
from cortex.eval.benchmark import load_questions, summarise, write_questions
from cortex.leaderboard.data import base_progress
from cortex.leaderboard.render import progress_charts
from cortex.protocol.rounds import AveragerRound, BenchmarkScore, GateResult


def row(asset="ETH", ret=0.02, **kw):
    return {"prompt": [{"role": "user", "content": f"{asset} data"}], "asset": asset, "horizon_days": 7,
            "outcome_return": ret, "realized_vol": 0.03, "outcome_direction": "up" if ret > 0 else "down",
            "cutoff": "2024-08-01", **kw}


def test_questions_round_trip_without_the_teachers_answer(tmp_path):
    rows = [row(), row("SOL", -0.01, messages=[{"role": "assistant", "content": "the teacher"}])]
    write_questions(rows, tmp_path / "q.jsonl")
    back, digest = load_questions(tmp_path / "q.jsonl")
    assert [r["asset"] for r in back] == ["ETH", "SOL"] and all("messages" not in r for r in back)
    write_questions(rows[:1], tmp_path / "one.jsonl")
    assert load_questions(tmp_path / "one.jsonl")[1] != digest  # another set, another hash


@pytest.mark.parametrize("text, error", [("", "0 questions"), ("{not json", "not JSON"),
                                         (json.dumps({"prompt": [], "asset": "BTC"}), "no horizon_days")])
def test_a_malformed_question_file_is_refused(tmp_path, text, error):
    (tmp_path / "q.jsonl").write_text(text)
    with pytest.raises(CortexError, match=error):
        load_questions(tmp_path / "q.jsonl")


def test_summarise_counts_brier_over_the_answers_that_parse():
    rows = [row(ret=0.02), row(ret=-0.01), row(ret=0.03)]
    parts = [{"parse_error": None, "answer": {"p_up": 0.8}}, {"parse_error": None, "answer": {"p_up": 0.6}},
             {"parse_error": "no <answer> block", "answer": None}]
    s = summarise("cortex/tiny-llama@abc", rows, [0.5, 0.1, -1.0], parts, "f" * 64)
    assert s.questions == 3 and s.parse_rate == pytest.approx(2 / 3)
    assert s.mean_reward == pytest.approx(-0.4 / 3)
    assert s.brier == pytest.approx(((0.8 - 1) ** 2 + (0.6 - 0) ** 2) / 2)
    assert s.p_up == [0.8, 0.6, None]  # each question's forecast, for paired comparisons
    assert s.brier_skill == pytest.approx(1 - ((0.8 - 1) ** 2 + 0.6**2 + 0.5**2) / 3 / 0.25)  # unparsed: 0.5
    assert BenchmarkScore.from_json(s.to_json()) == s
    failed = summarise("m@x", rows, None, [], "f" * 64, reason="time_budget")
    assert failed.mean_reward is None and failed.brier is None and failed.reason == "time_budget"


def score(model: str, reward: float, sha: str = "a" * 64) -> BenchmarkScore:
    return BenchmarkScore(model=model, questions=100, questions_sha256=sha, mean_reward=reward, parse_rate=0.9,
                          brier=0.25 - reward / 10)


def record(n: int, status: str, before: BenchmarkScore | None, after: BenchmarkScore | None) -> dict:
    gate = GateResult(merged_reward=0.1, base_reward=0.0, best_single_reward=0.05, best_single=None, margin=0.0,
                      passed=status == "published", reason="")
    return AveragerRound(round=n, block=10 * n, competition="cortex-tiny", status=status,
                         gate=gate if status != "skipped" else None,
                         published=f"b/r@{n}" if status == "published" else None,
                         benchmark_before=before, benchmark_after=after).to_json()


def test_base_progress_starts_at_genesis_and_follows_each_round():
    g, m1 = score("b/r@0", 0.10), score("b/r@1", 0.20)
    history = [record(1, "published", g, m1), record(2, "rejected", m1, m1), record(3, "skipped", None, None)]
    (points,) = base_progress(history).values()
    assert [(p["label"], p["status"], p["mean_reward"]) for p in points] == [
        ("genesis", "start", 0.10), ("r1", "published", 0.20), ("r2", "rejected", 0.20)]
    assert points[0]["model"] == "b/r@0" and points[1]["brier"] == pytest.approx(0.23)


def test_base_progress_compares_only_points_on_the_latest_question_set():
    old, new = "a" * 64, "b" * 64
    history = [record(1, "published", score("b/r@0", 0.1, old), score("b/r@1", 0.2, old)),
               record(2, "rejected", score("b/r@1", 0.3, new), score("b/r@1", 0.3, new))]
    (points,) = base_progress(history).values()
    assert [p["label"] for p in points] == ["before r2", "r2"]
    assert base_progress([record(1, "skipped", None, None)]) == {}


def test_progress_charts_draw_one_chart_per_metric_with_a_point_per_base():
    g, m1 = score("b/r@0", 0.10), score("b/r@1", 0.20)
    (points,) = base_progress([record(1, "published", g, m1), record(2, "rejected", m1, m1)]).values()
    html = str(progress_charts("cortex-tiny", points))
    for key in ("mean_reward", "parse_rate", "brier"):
        chart = html.split(f'id="base-progress-{key}"')[1].split("</svg>")[0]
        assert chart.count("<circle") == 3 and chart.count('class="marker') == 3 and ">genesis<" in chart
