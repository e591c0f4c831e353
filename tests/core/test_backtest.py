"""The backtest on small hand-made examples, and `cortex eval backtest` end to end."""

from __future__ import annotations

import json
import math
from datetime import date, datetime

import pytest

from cortex.backtest import (
    Row,
    backtest,
    brier,
    calibration,
    format_table,
    hit_rate,
    join,
    non_overlapping_days,
    performance,
    strategy,
)

# BTC, h = 1: four consecutive days.
P = [0.7, 0.4, 0.6, 0.2]
R = [0.10, -0.05, -0.02, 0.04]
ROWS = [Row("BTC", f"2024-01-0{i + 1}", 1, p, r, r > 0) for i, (p, r) in enumerate(zip(P, R))]


def test_hit_rate_and_brier_by_hand():
    assert hit_rate(ROWS) == 0.5  # right on days 1 and 2, wrong on 3 and 4
    assert brier(ROWS) == pytest.approx((0.3**2 + 0.4**2 + 0.6**2 + 0.8**2) / 4)  # 0.3125
    assert hit_rate([]) is None and brier([]) is None


def test_calibration_bins_and_ece_by_hand():
    table, ece = calibration(ROWS, bins=2)
    assert [b["n"] for b in table] == [2, 2]
    assert table[0]["mean_p"] == pytest.approx(0.3) and table[0]["share_up"] == 0.5
    assert table[1]["mean_p"] == pytest.approx(0.65) and table[1]["share_up"] == 0.5
    assert ece == pytest.approx(0.5 * 0.2 + 0.5 * 0.15)  # 0.175
    table, _ = calibration([Row("BTC", "2024-01-01", 1, 1.0, 0.1, True)], bins=10)
    assert table[-1]["n"] == 1  # p_up = 1 falls in the last, closed bin
    assert calibration([], bins=3) == ([{"lo": k / 3, "hi": (k + 1) / 3, "n": 0, "mean_p": None,
                                         "share_up": None} for k in range(3)], None)


def test_perfectly_calibrated_forecasts_have_zero_ece():
    rows = [Row("X", f"2024-01-{d:02d}", 1, 0.75, 0.01 if d % 4 else -0.01, bool(d % 4))
            for d in range(1, 9)]
    assert calibration(rows, bins=4)[1] == pytest.approx(0.0)


def test_non_overlapping_days():
    days = ["2024-01-15", "2024-01-01", "2024-01-03", "2024-01-08", "2024-01-09", "2024-01-08"]
    assert non_overlapping_days(days, 7) == ["2024-01-01", "2024-01-08", "2024-01-15"]
    assert non_overlapping_days(days, 1) == sorted(set(days))


def test_strategy_by_hand():
    out = strategy(ROWS, 1)
    long_flat = [0.10, 0.0, -0.02, 0.0]  # long on days 1 and 3 (p_up > 0.5)
    assert out["strategy"]["total_return"] == pytest.approx(1.10 * 0.98 - 1)
    assert out["buy_and_hold"]["total_return"] == pytest.approx(1.10 * 0.95 * 0.98 * 1.04 - 1)
    mean = sum(long_flat) / 4
    std = math.sqrt(sum((x - mean) ** 2 for x in long_flat) / 3)
    assert out["strategy"]["sharpe"] == pytest.approx(mean / std * math.sqrt(365))
    assert out["strategy"]["periods"] == 4


def test_overlapping_horizon_uses_every_seventh_day_and_equal_weights():
    rows = []
    for d in range(1, 16):  # daily samples, 7-day horizon, two assets
        day = f"2024-01-{d:02d}"
        rows.append(Row("BTC", day, 7, 0.8, 0.07, True))
        rows.append(Row("ETH", day, 7, 0.2, -0.03 if d != 8 else 0.01, d == 8))
    out = strategy(rows, 7)
    assert out["strategy"]["periods"] == 3  # Jan 1, 8 and 15
    # long BTC, flat ETH, equal weights: 3.5% a period
    assert out["strategy"]["total_return"] == pytest.approx(1.035**3 - 1)
    hold = [(0.07 - 0.03) / 2, (0.07 + 0.01) / 2, (0.07 - 0.03) / 2]
    assert out["buy_and_hold"]["total_return"] == pytest.approx(math.prod(1 + h for h in hold) - 1)
    assert out["strategy"]["sharpe"] is None  # no spread: undefined, not infinite


def test_performance_edge_cases():
    assert performance([], 1) == {"periods": 0, "total_return": 0.0, "sharpe": None}
    assert performance([0.05], 7)["sharpe"] is None


def test_backtest_groups_and_table():
    rows = ROWS + [Row("ETH", "2024-01-01", 1, 0.9, 0.02, True)]
    report = backtest(rows, bins=5)
    keys = [(g["asset"], g["horizon_days"]) for g in report["groups"]]
    assert keys == [("BTC", 1), ("ETH", 1), ("ALL", 1)]
    assert report["overall"]["n"] == 5 and "strategy" not in report["overall"]
    assert report["groups"][1]["hit_rate"] == 1.0
    assert report["overall"]["brier_constant_half"] == 0.25
    text = format_table(report)
    assert "BTC" in text and "ALL" in text and "—" in text  # ETH's single period has no Sharpe
    json.dumps(report)


def test_join_counts_and_parses_completions():
    samples = [
        {"asset": "BTC", "cutoff": "2024-01-01", "horizon_days": 1, "outcome_return": 0.1,
         "outcome_direction": "up"},
        {"asset": "BTC", "cutoff": datetime(2024, 1, 2), "horizon_days": 1,
         "outcome_return": -0.05, "outcome_direction": "down"},
        {"asset": "ETH", "cutoff": date(2024, 1, 1), "horizon_days": 1, "outcome_return": 0.0},
        {"asset": "ETH", "cutoff": "2024-01-02", "horizon_days": 1, "outcome_return": 0.01},
    ]
    answer = {"asset": "BTC", "horizon_days": 1, "direction": "down", "p_up": 0.3,
              "return_pct": -1.0}
    predictions = [
        {"asset": "btc", "cutoff": "2024-01-01T00:00:00", "horizon_days": 1, "p_up": 0.7},
        {"asset": "BTC", "cutoff": "2024-01-01", "horizon_days": 1, "p_up": 0.1},  # duplicate
        {"asset": "BTC", "cutoff": "2024-01-02", "horizon_days": 1,
         "completion": f"<think>r</think><answer>{json.dumps(answer)}</answer>"},
        {"asset": "ETH", "cutoff": "2024-01-01", "horizon_days": 1, "p_up": 1.5},  # invalid
        {"asset": "ETH", "cutoff": "2024-01-02", "horizon_days": 1, "completion": "no answer"},
        {"asset": "SOL", "cutoff": "2024-01-01", "horizon_days": 1, "p_up": 0.5},  # unmatched
        {"cutoff": "2024-01-01"},  # invalid: no asset
    ]
    rows, counts = join(samples, predictions)
    assert counts == {"samples": 4, "matched": 2, "missing": 2, "invalid": 3, "unmatched": 1,
                      "duplicates": 1}
    assert [(r.asset, r.cutoff, r.p_up, r.went_up) for r in rows] == [
        ("BTC", "2024-01-01", 0.7, True), ("BTC", "2024-01-02", 0.3, False)]


def _dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    def split(days, rets):
        return datasets.Dataset.from_list([
            {"messages": [{"role": "user", "content": "x"}], "asset": a, "cutoff": d,
             "horizon_days": 1, "outcome_return": r, "outcome_direction": "up" if r > 0 else "down",
             "realized_vol": 0.03}
            for d, r in zip(days, rets) for a in ("BTC", "ETH")])
    dd = datasets.DatasetDict({"train": split(["2023-12-01"], [0.01]),
                               "test": split(["2024-01-01", "2024-01-02", "2024-01-03"],
                                             [0.02, -0.01, 0.03])})
    path = tmp_path / "ds"
    dd.save_to_disk(str(path))
    (path / "card.json").write_text(json.dumps({"source": "synthetic"}))
    return path


def test_cli_backtest_end_to_end(tmp_path, capsys):
    from cortex.cli import main

    path = _dataset(tmp_path)
    preds = tmp_path / "preds.jsonl"
    preds.write_text("\n".join(json.dumps({"asset": a, "cutoff": d, "horizon_days": 1, "p_up": p,
                                           "return_pct": 0.5})
                               for a in ("BTC", "ETH")
                               for d, p in [("2024-01-01", 0.6), ("2024-01-02", 0.4),
                                            ("2024-01-03", 0.7)]) + "\n\n")
    out = tmp_path / "report.json"
    rc = main(["eval", "backtest", "--dataset", str(path), "--predictions", str(preds),
               "--json", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "data source: synthetic" in printed and "6 of 6 samples" in printed
    report = json.loads(out.read_text())
    assert report["overall"]["hit_rate"] == 1.0 and report["source"] == "synthetic"
    all_1 = next(g for g in report["groups"] if g["asset"] == "ALL")
    assert all_1["strategy"]["total_return"] == pytest.approx(1.02 * 1.03 - 1)

    rc = main(["eval", "backtest", "--dataset", str(path), "--predictions", str(preds),
               "--split", "validation"])
    assert rc == 2 and "no split 'validation'" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"asset": "BTC"}\nnot json\n')
    rc = main(["eval", "backtest", "--dataset", str(path), "--predictions", str(bad)])
    assert rc == 2 and "bad.jsonl:2" in capsys.readouterr().err
