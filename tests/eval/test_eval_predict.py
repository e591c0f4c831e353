"""`cortex eval predict`: a base folder (with or without an adapter) over a dataset split, written as the
predictions JSONL that `cortex eval backtest` reads (issue 20)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cortex.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from cortex.model.random_base import build_base

    tmp = tmp_path_factory.mktemp("predict")
    assert main(["data", "build", "--source", "synthetic", "--assets", "BTC", "--horizons", "1", "--start",
                 "2024-01-01", "--end", "2024-02-15", "--out", str(tmp / "ds"), "--no-progress"]) == 0
    base = build_base(tmp / "base", "llama3", (ROOT / "tests/data/chat_templates/llama3_1.jinja").read_text(),
                      ["a small corpus of words", "and some more words"] * 20)
    return tmp, base


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_predict_writes_what_backtest_reads(world, capsys):
    from cortex.backtest import join
    from cortex.eval.cli import read_samples

    tmp, base = world
    out = tmp / "preds.jsonl"
    argv = ["eval", "predict", "--base", str(base), "--dataset", str(tmp / "ds"), "--out", str(out), "--limit", "3",
            "--max-new-tokens", "8", "--device", "cpu"]
    assert main(argv) == 0
    assert "wrote 3 predictions" in capsys.readouterr().out
    preds = lines(out)
    samples, _ = read_samples(tmp / "ds", "test")
    assert [(p["asset"], p["cutoff"], p["horizon_days"]) for p in preds] == \
        [(s["asset"], s["cutoff"], s["horizon_days"]) for s in samples[:3]]
    assert all(isinstance(p["completion"], str) for p in preds)
    _, counts = join(samples, preds)  # every prediction finds its sample (a random base's text is unparseable)
    assert counts["matched"] + counts["invalid"] == 3 and counts["unmatched"] == 0


def test_predict_with_an_adapter(world, capsys):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    tmp, base = world
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.save_pretrained(tmp / "adapter")
    out = tmp / "adapter.jsonl"
    assert main(["eval", "predict", "--base", str(base), "--adapter", str(tmp / "adapter"), "--dataset",
                 str(tmp / "ds"), "--split", "validation", "--out", str(out), "--limit", "2",
                 "--max-new-tokens", "8", "--device", "cpu"]) == 0
    assert [p["cutoff"] for p in lines(out)] == read_cutoffs(tmp / "ds", "validation")[:2]


def read_cutoffs(ds: Path, split: str) -> list[str]:
    from cortex.eval.cli import read_samples

    return [s["cutoff"] for s in read_samples(ds, split)[0]]


@pytest.mark.parametrize("change, needle", [
    ({"--base": "nowhere"}, "is not a model folder"),
    ({"--adapter": "nowhere"}, "is not a peft adapter folder"),
    ({"--split": "nope"}, "has no split 'nope'"),
    ({"--limit": "0"}, "--limit: must be at least 1"),
])
def test_predict_refuses_bad_input(change, needle, world, capsys):
    tmp, base = world
    flags = {"--base": str(base), "--dataset": str(tmp / "ds"), "--out": str(tmp / "x.jsonl"), **change}
    try:
        status = main(["eval", "predict", *[x for kv in flags.items() for x in kv]])
    except SystemExit as exc:
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2 and needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp / "x.jsonl").exists()
