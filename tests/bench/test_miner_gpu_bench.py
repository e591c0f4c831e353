"""bench/gpu_miner.py's --tiny mode on the CPU: every step of the GPU smoke run, at a tiny shape.

The GPU figures themselves (tokens/s, peak memory, fraction of the bf16 peak) come only from a GPU;
here the run must train, save an adapter the stock peft loader opens, and score it held-out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.gpu_miner import main  # noqa: E402


def test_tiny_mode_runs_every_step(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    report = main(["--tiny", "--steps", "1", "--heldout", "1", "--max-new-tokens", "4", "--out", str(tmp_path),
                   "--json", str(tmp_path / "figures.json")])
    assert json.loads((tmp_path / "figures.json").read_text()) == json.loads(json.dumps(report))
    assert report["shape"] == "tiny" and report["lora"]["steps"] == 1 and report["lora"]["tokens"] > 0
    assert report["qlora"].startswith("skipped: no GPU")
    assert report["heldout"]["prompts"] == 1 and report["heldout"]["heldout_failure_adapter"] is None
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "base")
    assert report["base"]["params"] == sum(p.numel() for p in base.parameters())  # the FLOP count's N
    PeftModel.from_pretrained(base, str(tmp_path / "lora" / "adapter"))
