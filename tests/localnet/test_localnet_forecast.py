"""The localnet summary's forecasting table: references, genesis, the final base, final − genesis."""

from __future__ import annotations

import json

from rich.console import Console

from cortex.data import build_samples, split_by_time
from cortex.data.dataset import load_frames
from cortex.data.sources import SyntheticSource
from cortex.eval.benchmark import summarise, write_questions
from cortex.localnet.config import Settings
from cortex.localnet.summary import _forecast_table, forecast, verdict
from cortex.protocol.rounds import AveragerRound


def test_the_summary_reads_skill_against_the_references_and_the_paired_interval(tmp_path):
    data = {"source": "synthetic:6", "seed": 6, "stride": 3, "start": "2021-01-01", "end": "2023-03-31"}
    frames = load_frames(SyntheticSource(seed=6), ["BTC", "ETH"], data["start"], data["end"])
    samples = build_samples(frames, ["BTC", "ETH"], [1, 7], data["start"], data["end"], stride=3)
    rows = [s.row() for s in split_by_time(samples)[0]["test"]]
    s = Settings(workdir=tmp_path)
    (tmp_path / "base").mkdir()
    write_questions(rows, tmp_path / "base" / "heldout.jsonl")
    (tmp_path / "base" / "bootstrap.json").write_text(json.dumps(
        {"config": data, "data": {"assets": ["BTC", "ETH"], "horizons": [1, 7]}}))
    from cortex.eval.benchmark import load_questions

    rows, sha = load_questions(tmp_path / "base" / "heldout.jsonl")
    up = [r["outcome_return"] > 0 for r in rows]

    def score(model, p):
        parts = [{"parse_error": None, "answer": {"p_up": q}} for q in p]
        return summarise(model, rows, [0.0] * len(rows), parts, sha)

    genesis = score("b@0", [0.5] * len(rows))
    final = score("b@1", [0.7 if u else 0.4 for u in up])  # knows something
    records = [AveragerRound(round=1, block=10, competition="c", status="published", published="b@1",
                             benchmark_before=genesis, benchmark_after=final).to_json()]
    f = forecast(s, records)
    assert f["questions"] == len(rows) and f["final_model"] == "b@1"
    assert set(f["skill"]) == {"constant 0.5", "base rate", "analyst", "oracle", "genesis", "final base"}
    assert f["skill"]["genesis"] == 0.0 and f["skill"]["final base"] > 0
    d = f["final_minus_genesis"]
    assert d["low"] > 0 and d["mean"] > 0
    console = Console(record=True, width=160)
    console.print(_forecast_table(f))
    text = " ".join(console.export_text().split())  # as read, whatever the wrapping
    assert "final − genesis" in text and "oracle (the ceiling)" in text and "analyst (the teacher)" in text
    assert "forecasts better than genesis" in text  # the caption under the table
    import random

    rng = random.Random(0)  # sure of a side drawn at random: a coin's worth, by chance a little either way
    coin = [rng.choice((0.4, 0.6)) for _ in up]
    unsure = forecast(s, [AveragerRound(round=1, block=10, competition="c", status="published", published="b@2",
                                        benchmark_before=genesis, benchmark_after=score("b@2", coin)).to_json()])
    d = unsure["final_minus_genesis"]
    assert d["low"] < 0 < d["high"] and "can tell from chance" in verdict(unsure)
    wrong = forecast(s, [AveragerRound(round=1, block=10, competition="c", status="published", published="b@3",
                                       benchmark_before=genesis,
                                       benchmark_after=score("b@3", [0.4 if u else 0.7 for u in up])).to_json()])
    assert "forecasts worse than genesis" in verdict(wrong)
    same = forecast(s, [AveragerRound(round=1, block=10, competition="c", status="rejected", benchmark_before=genesis,
                                      benchmark_after=genesis).to_json()])
    assert "no merge changed" in verdict(same)
    assert forecast(s, [AveragerRound(round=1, block=10, competition="c").to_json()]) is None  # nothing scored
