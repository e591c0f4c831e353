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
