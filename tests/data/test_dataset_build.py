"""`cortex data build` end to end on the synthetic market (and on real CSVs when CI has them)."""

import json
import os

import datasets
import pandas as pd
import pytest

from cortex.cli import main
from cortex.data.dataset import BuildConfig, build_dataset
from cortex.reward import score

ARGS = ["data", "build", "--source", "synthetic", "--assets", "BTC,ETH", "--horizons", "1,7",
        "--teacher", "analyst", "--start", "2023-01-01", "--end", "2023-12-31", "--no-progress"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "syn"
    assert main(ARGS + ["--out", str(out)]) == 0
    return out


def test_loadable_with_splits_columns_and_card(built, capsys):
    dd = datasets.load_from_disk(str(built))
    assert set(dd) == {"train", "validation", "test"}
    cols = set(dd["train"].column_names)
    assert {"messages", "prompt", "asset", "cutoff", "horizon_days", "outcome_return", "outcome_direction",
            "realized_vol", "source", "synthetic"} <= cols
    row = dd["test"][0]
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert row["prompt"] == row["messages"][:2] and row["synthetic"] is True
    assert row["outcome_direction"] == ("up" if row["outcome_return"] > 0 else "down")
    assert score(row["messages"][2]["content"], row).parse_error is None

    card = json.loads((built / "card.json").read_text())
    assert card["synthetic"] is True and "SYNTHETIC" in card["data"] and card["assets"] == ["BTC", "ETH"]
    assert card["time_ordered_no_overlap"] is True and card["split_plan"]["gap_days"] == 7
    for name in ("train", "validation", "test"):
        split = card["splits"][name]
        assert split["rows"] == len(dd[name]) > 0
        bal = split["class_balance"]
        assert bal["up"] + bal["down"] == split["rows"]
        assert min(dd[name]["cutoff"]) == split["cutoffs"][0]
    assert card["splits"]["train"]["cutoffs"][0] == "2023-01-01"  # --start is the first cutoff
    assert card["splits"]["test"]["last_outcome_day"] <= "2023-12-31"  # --end bounds every outcome
    assert 0 < card["teacher_pass_rate"] <= 1
    assert card["teacher"]["fit_window"][1] <= card["splits"]["train"]["cutoffs"][1]
    assert "sqrt(horizon_days)" in card["realized_vol"]


def test_splits_never_overlap_in_time(built):
    dd = datasets.load_from_disk(str(built))
    def last_outcome(ds):
        return max(pd.Timestamp(c) + pd.Timedelta(days=h) for c, h in zip(ds["cutoff"], ds["horizon_days"]))
    assert last_outcome(dd["train"]) < pd.Timestamp(min(dd["validation"]["cutoff"]))
    assert last_outcome(dd["validation"]) < pd.Timestamp(min(dd["test"]["cutoff"]))


@pytest.mark.slow
def test_same_build_is_deterministic(built, tmp_path):
    again = tmp_path / "again"
    assert main(ARGS + ["--out", str(again)]) == 0
    a, b = datasets.load_from_disk(str(built)), datasets.load_from_disk(str(again))
    assert a["train"]["messages"] == b["train"]["messages"]
    assert main(ARGS + ["--out", str(again), "--seed", "1"]) == 0  # rewriting in place works
    assert datasets.load_from_disk(str(again))["test"]["outcome_return"] != a["test"]["outcome_return"]


def test_show_check_prompt_commands(built, capsys):
    assert main(["data", "show", str(built), "--split", "validation"]) == 0
    out = capsys.readouterr().out
    assert '"synthetic": true' in out and "--- assistant" in out and "<answer>" in out
    assert main(["data", "check", "--source", "synthetic", "--assets", "BTC,SOL", "--start", "2024-01-01",
                 "--end", "2024-03-01"]) == 0
    assert "all series clean" in capsys.readouterr().out
    assert main(["data", "prompt", "--assets", "ETH", "--cutoff", "2024-06-01", "--horizon", "7"]) == 0
    assert "ETH daily data up to 2024-06-01" in capsys.readouterr().out


def test_user_errors_are_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    assert main(["data", "build", "--source", "nowhere", "--out", str(tmp_path / "x")]) == 2
    assert main(ARGS + ["--teacher", "openrouter", "--out", str(tmp_path / "y")]) == 2
    assert main(ARGS[:2] + ["--source", f"csv:{tmp_path}", "--out", str(tmp_path / "z")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "unknown source" in err[0] and "OPENROUTER_API_KEY" in err[1]
    assert "no BTCUSDT.csv" in err[2]


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("CORTEX_MARKET_DATA"), reason="CORTEX_MARKET_DATA is not set")
def test_real_csv_build(tmp_path):
    card = build_dataset(BuildConfig(source="csv", assets=["BTC", "ETH"], horizons=[1, 7], start="2024-01-01",
                                     out=str(tmp_path / "real"), progress=False))
    assert card["synthetic"] is False and card["data"] == "real market data"
    assert card["time_ordered_no_overlap"] and card["splits"]["test"]["last_outcome_day"] <= "2025-06-30"
    assert len(datasets.load_from_disk(str(tmp_path / "real"))["train"]) > 500
