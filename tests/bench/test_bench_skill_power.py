"""bench/skill_power.py on a short synthetic range: planted forecasters through the real reward and scoring.

The full benchmark (about 180 scoring days, docs/benchmarks.md) holds the statistical goals; this
checks the properties that hold on any range: the forecaster that answers what the base answers
earns nothing, the later copy of the best earns less than the original, the emission is accounted
for, and the command prints its summary line last.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from datetime import date
from pathlib import Path

import pytest

from cortex.data.sources.synthetic import SyntheticSource
from cortex.protocol.competition import CORTEX_70B, SkillConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("skill_power", ROOT / "bench" / "skill_power.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["skill_power"] = module
    spec.loader.exec_module(module)
    return module


def test_short_synthetic_run(bench):
    comp = dataclasses.replace(CORTEX_70B, eval=dataclasses.replace(CORTEX_70B.eval, assets=("BTC", "ETH", "SOL", "XRP")),
                               scoring=SkillConfig(window_days=30, min_days=8, questions_per_day=12))
    start, end = date(2024, 1, 1), date(2024, 2, 20)
    frames = SyntheticSource(seed=0).load(list(comp.eval.assets), "2023-08-01", "2024-03-01")
    result = bench.run(comp, frames, start, end, copy_after=10)
    rows = {r["name"]: r for r in result["rows"]}
    assert result["zero_skill_share"] == 0.0 and rows["rho=0"]["brier_skill"] == 0.0
    assert result["copy_share"] < result["original_share"] and result["original_share"] > 0
    assert sum(r["share"] for r in result["rows"]) + result["burned"] == pytest.approx(1.0)
    assert sum(r["old_share"] for r in result["rows"]) == pytest.approx(1.0)
    assert rows["rho=0.25"]["brier_skill"] > 0 and -1 <= result["spearman"] <= 1


def test_command_prints_the_summary_last(bench, capsys):
    bench.main(["--start", "2024-01-01", "--end", "2024-01-20", "--assets", "BTC,ETH", "--competition", "cortex-tiny",
                "--copy-after", "5"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"spearman=-?[0-9.]+ zero_skill_share=0\.0000 copy_share=[0-9.]+", last)
