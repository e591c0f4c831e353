"""bench/forecast_ceiling.py's ``--moves`` report on a small synthetic range: genesis' forecasts moved after the
fact (each row against genesis), and the analyst as each round-1 miner of a work directory fits it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from cortex.data import build_samples, split_by_time
from cortex.data.dataset import load_frames
from cortex.data.sources import SyntheticSource

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("forecast_ceiling", ROOT / "bench" / "forecast_ceiling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_moves_report_reads_genesis_and_each_miners_window(bench, tmp_path, capsys):
    data = {"source": "synthetic:4", "seed": 4, "stride": 3, "start": "2021-01-01", "end": "2023-06-30",
            "assets": ["BTC", "ETH"], "horizons": [1, 7]}
    frames = load_frames(SyntheticSource(seed=4), ["BTC", "ETH"], data["start"], data["end"])
    splits, _ = split_by_time(build_samples(frames, ["BTC", "ETH"], [1, 7], data["start"], data["end"], stride=3))
    rows = [s.row() for s in splits["test"]][::3]
    genesis = [0.6 if r["outcome_return"] > 0 else 0.4 for r in rows]  # right every time and unsure of it
    genesis[0] = None  # an answer that did not parse
    analyst = [0.5] * len(rows)
    configs = tmp_path / "configs" / "round-1"
    configs.mkdir(parents=True)
    (configs / "miner0.yaml").write_text(json.dumps({"assets": ["ETH"], "data_start": "2022-01-01",
                                                     "data_end": "2022-12-31", "teacher": "analyst-words"}))
    table = bench.moves_report(rows, data, genesis, analyst, tmp_path)
    by_name = {t["forecaster"]: t for t in table}
    assert by_name["genesis x1.5 from 0.5"]["mean"] > 0 < by_name["genesis x2 from 0.5"]["mean"]  # it knew more than it said
    assert by_name["genesis 50% of the way to the analyst"]["mean"] < 0  # a coin's way: worse
    assert by_name["miner0's analyst"]["window"] == ["2022-01-01", "2022-12-31"]
    out = capsys.readouterr().out
    assert "miner0   ETH" in out and "(teacher analyst-words)" in out


def test_period_questions_are_resolved_evenly_spaced_and_inside_the_period(bench):
    data = {"source": "synthetic:4", "seed": 4, "assets": ["BTC", "ETH"], "horizons": [1, 7]}
    rows = bench.period_questions(data, "2023-02-01", "2023-03-31", 40)
    cutoffs = [r["cutoff"][:10] for r in rows]
    assert len(rows) == 40 and cutoffs == sorted(cutoffs)
    assert "2023-02-01" <= cutoffs[0] < "2023-02-05" and "2023-03-25" < cutoffs[-1] <= "2023-03-31"  # spread over it
    assert all(r["outcome_return"] is not None for r in rows)
    with pytest.raises(SystemExit, match="no resolved questions"):
        bench.period_questions(data, "2031-01-01", "2031-02-01", 10)


def test_published_bases_and_the_runs_last_day(bench, tmp_path, monkeypatch):
    rounds = [{"round": 1, "parent": "c/t@g" + "0" * 39, "published": "c/t@a" + "0" * 39},
              {"round": 2, "parent": "c/t@a" + "0" * 39, "published": None},
              {"round": 3, "parent": "c/t@a" + "0" * 39, "published": "c/t@b" + "0" * 39}]
    monkeypatch.setattr("cortex.leaderboard.files.averager_rounds", lambda dirs: rounds)
    assert bench.published_bases(tmp_path) == [("genesis", rounds[0]["parent"]), ("r1", rounds[0]["published"]),
                                               ("r3", rounds[2]["published"])]
    assert bench.last_day(tmp_path) is None  # not a finished run
    (tmp_path / "localnet.json").write_text(json.dumps({"settings": {"start_day": "2024-01-01", "blocks_per_day": 10}}))
    (tmp_path / "summary.json").write_text(json.dumps({"block": 395}))
    assert bench.last_day(tmp_path) == "2024-02-09"  # 39 days after the start


def test_the_student_table_reads_each_forecaster_against_the_configs_analyst(bench, capsys):
    """``--student``'s table from forecasts already made: the teacher follows itself; a copy of it follows it as
    well; genesis at 0.3 of its scale has the teacher's correlation and a slope of 0.3; a lean does not."""
    from cortex.eval.ceiling import analyst_fitted_on, moved

    data = {"source": "synthetic:4", "seed": 4, "stride": 3, "start": "2021-01-01", "end": "2023-06-30",
            "assets": ["BTC", "ETH"], "horizons": [1, 7]}
    frames = load_frames(SyntheticSource(seed=4), ["BTC", "ETH"], data["start"], data["end"])
    splits, _ = split_by_time(build_samples(frames, ["BTC", "ETH"], [1, 7], data["start"], data["end"], stride=3))
    rows = [s.row() for s in splits["test"]][::4]
    cfg = {"assets": ["ETH"], "data_start": "2022-06-01", "data_end": "2022-12-31", "teacher": "analyst-words"}
    teacher = analyst_fitted_on(bench.benchmark_samples(rows, data), data, ["ETH"], "2022-06-01", "2022-12-31")
    genesis = moved(teacher, 0.3)
    scored = {"genesis": genesis, "copy": list(teacher), "lean": [0.15] * (len(rows) - 1) + [None]}
    table = {t["forecaster"]: t for t in bench.student_table(rows, data, cfg, scored)}
    assert table["the teacher (its analyst)"]["corr"] == pytest.approx(1.0)
    assert table["copy"]["slope"] == pytest.approx(1.0) and table["copy"]["gain"] == pytest.approx(
        table["copy"]["skill"] - table["genesis"]["skill"])
    assert table["genesis"]["corr"] == pytest.approx(1.0) and table["genesis"]["slope"] == pytest.approx(0.3, abs=0.02)
    assert "gain" not in table["genesis"]
    assert table["lean"]["values"] == 2 and table["lean"]["corr"] < 0.5 and table["lean"]["mean"] < 0.2
    assert "the bootstrap's analyst" in table
    out = capsys.readouterr().out
    assert "analyst-words fitted on ETH 2022-06-01..2022-12-31" in out and "copy" in out


def test_the_student_flags_are_checked_before_any_work(bench, tmp_path, monkeypatch, capsys):
    for argv, said in ((["--student", str(tmp_path / "m.yaml")], "need --workdir"),
                       (["--workdir", str(tmp_path), "--adapter", str(tmp_path)], "--adapter needs --student"),
                       (["--workdir", str(tmp_path), "--student", str(tmp_path / "m.yaml")], "does not exist")):
        monkeypatch.setattr(sys, "argv", ["forecast_ceiling.py", *argv])
        with pytest.raises(SystemExit):
            bench.main()
        assert said in capsys.readouterr().err
