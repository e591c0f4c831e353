"""bench/gpu_validator.py's smoke test: the GPU benchmark's code path on a tiny Llama on the CPU (--tiny, with
the static-cache run), with only the packages the GPU machine has (torch, transformers, peft, accelerate and
their own deps)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOREIGN = {"pandas", "bittensor", "datasets", "trl", "wandb", "vllm", "pyarrow", "scipy", "sklearn", "dotenv",
           "tenacity", "httpx", "fastapi"}
RUN = """
import runpy, sys
sys.argv = ["gpu_validator.py", "--tiny", "--static-cache", "--json", sys.argv[1]]
runpy.run_path("bench/gpu_validator.py", run_name="__main__")
print("modules:", " ".join(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_gpu_validator_runs_tiny_on_the_cpu_with_only_the_gpu_machines_packages(tmp_path):
    figures = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, "-c", RUN, str(figures)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("device: CPU; base: tiny Llama")
    assert any(line.startswith("(a) validator engine, multi-LoRA batches") for line in lines)
    assert any(line.startswith("(b) reload per adapter") for line in lines)
    ratio = [line for line in lines if line.startswith("ratio=")]
    assert len(ratio) == 1 and float(ratio[0].split("=")[1]) > 0
    modules = set(lines[-1].removeprefix("modules: ").split())
    assert {"torch", "transformers", "peft"} <= modules and not modules & FOREIGN, modules & FOREIGN
    report = json.loads(figures.read_text())
    assert report["tokens"]["a"]["expected"] == report["tokens"]["a"]["produced"] > 0  # every token counted
    assert report["tokens"]["b"]["expected"] == report["tokens"]["b"]["produced"] > 0
    agreement = report["agreement"]["same_batch_other_cotenants"]
    assert agreement["rows"] > 0 and agreement["rows_differing"] == 0  # co-tenants never change an answer
    assert any(line.startswith("agreement, batch_") for line in lines)
    static = report["static"]  # the engine's static KV cache (not compiled on a CPU): the dynamic cache's answers
    assert static["tokens"] == report["tokens"]["a"]["produced"] and not static["compiled"]
    assert static["against_dynamic"]["rows"] > 0 and static["against_dynamic"]["rows_differing"] == 0
    assert any(line.startswith("(a, static cache)") for line in lines)
