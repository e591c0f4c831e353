"""Benchmark the streaming exact merge against peft's merge_and_unload, 8 DoRA adapters, ≥100M parameters.

Builds a Llama base in code (random weights, bf16 safetensors shards in a temporary folder) and 8 DoRA
adapters on every linear projection, then runs each method in its own subprocess so that peak memory
(the process's VmHWM, which also sees torch's tensors) does not mix:

- stream: ``averager.stream.merge_exact`` (one tensor at a time into an fp32 master);
- peft:   per adapter, load the base, ``PeftModel.from_pretrained`` + ``merge_and_unload``, and accumulate
          the weighted deltas into an fp32 copy of the base (one full model load per adapter), then save.

Both write a float32 model directory; the two outputs are compared tensor by tensor. The last line is
``memory_ratio=<x> time_ratio=<y>`` (peft / stream). Run: .venv/bin/python bench/merge.py
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cortex import hub_kernels  # noqa: E402 - importing cortex turns Hub kernels off



def build(root: Path, layers: int, hidden: int, adapters: int, rank: int) -> list[Path]:
    """Save a random Llama base (bf16 shards) and ``adapters`` DoRA adapters for it under ``root``."""
    import torch
    from peft import LoraConfig
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    from averager.merge import row_norms
    from cortex.adapter import LLAMA_TARGETS, LowRank

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=hidden, intermediate_size=hidden * 11 // 4, num_hidden_layers=layers,
                         num_attention_heads=hidden // 64, num_key_value_heads=hidden // 128,
                         vocab_size=32000, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    assert params >= 100_000_000, f"only {params / 1e6:.0f}M parameters"
    model.save_pretrained(str(root / "base"), max_shard_size="100MB")
    print(f"base: {params / 1e6:.1f}M parameters, {layers} layers, hidden {hidden}, bf16 shards")
    weights = {k: v.float() for k, v in model.state_dict().items()}
    del model
    paths = []
    for i in range(adapters):
        g = torch.Generator().manual_seed(100 + i)
        tensors = {}
        for name, W in weights.items():
            if name.endswith(".weight") and name.split(".")[-2] in LLAMA_TARGETS:
                out, inp = W.shape
                f = LowRank(A=torch.randn(rank, inp, generator=g) / inp ** 0.5,
                            B=torch.randn(out, rank, generator=g) * 0.02, scale=2.0)
                key = f"base_model.model.{name.removesuffix('.weight')}"
                tensors[f"{key}.lora_A.weight"], tensors[f"{key}.lora_B.weight"] = f.A, f.B
                tensors[f"{key}.lora_magnitude_vector"] = row_norms(W, f) * (0.9 + 0.2 * torch.rand(out, generator=g))
        path = root / f"dora{i}"
        LoraConfig(r=rank, lora_alpha=2 * rank, use_dora=True, target_modules=list(LLAMA_TARGETS)).save_pretrained(str(path))
        save_file(tensors, str(path / "adapter_model.safetensors"))
        paths.append(path)
    print(f"adapters: {adapters} DoRA, r={rank}, on {', '.join(LLAMA_TARGETS)}")
    return paths


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM: unlike ru_maxrss it is not inherited across fork/exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(method: str, base: str, adapters: list[str], out: str) -> None:
    """Run one method (imports done before the clock starts), then print its wall time and peak RSS."""
    import torch
    from peft import PeftModel
    from transformers import LlamaForCausalLM

    from averager.stream import merge_exact
    from cortex.adapter import NO_NORM_BOUNDS, BaseSpec, load_adapter, own_limits

    weight = 1.0 / len(adapters)
    spec = BaseSpec.from_files(Path(base), norms=False) if method == "stream" else None  # shapes: no norm bounds
    rss_start = peak_rss_mb()
    start = time.perf_counter()
    if method == "stream":
        checked = [(load_adapter(a, spec, own_limits(spec), bounds=NO_NORM_BOUNDS), weight) for a in adapters]
        merge_exact(base, checked, out, progress=False)
    else:
        master = LlamaForCausalLM.from_pretrained(base, dtype=torch.float32, **hub_kernels.load_kwargs())
        original = {k: v.clone() for k, v in master.state_dict().items()}
        accumulated = master.state_dict()
        for adapter in adapters:
            model = LlamaForCausalLM.from_pretrained(base, dtype=torch.float32, **hub_kernels.load_kwargs())
            merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
            for key, value in merged.state_dict().items():
                accumulated[key].add_(value - original[key], alpha=weight)
            del model, merged
        master.save_pretrained(out)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb(), "start_mb": rss_start}))


def run(method: str, base: Path, adapters: list[Path], out: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, "--base", str(base), "--out", str(out),
           "--adapters", *map(str, adapters)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def max_difference(a: Path, b: Path) -> float:
    """Largest absolute difference between two model directories' tensors, one shard at a time."""
    from safetensors import safe_open

    where = {}
    for shard in b.glob("*.safetensors"):
        with safe_open(str(shard), "pt") as handle:
            where.update({k: shard for k in handle.keys()})
    worst = 0.0
    for shard in a.glob("*.safetensors"):
        with safe_open(str(shard), "pt") as handle:
            for key in handle.keys():
                with safe_open(str(where[key]), "pt") as other:
                    diff = (handle.get_tensor(key).float() - other.get_tensor(key).float()).abs().max()
                worst = max(worst, float(diff))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=("stream", "peft"))
    parser.add_argument("--base")
    parser.add_argument("--adapters", nargs="*")
    parser.add_argument("--out")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--count", type=int, default=8, help="number of DoRA adapters (8)")
    parser.add_argument("--rank", type=int, default=16)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.base, args.adapters, args.out)
        return
    with tempfile.TemporaryDirectory(prefix="cortex-bench-merge-") as tmp:
        root = Path(tmp)
        adapters = build(root, args.layers, args.hidden, args.count, args.rank)
        results = {m: run(m, root / "base", adapters, root / f"out-{m}") for m in ("stream", "peft")}
        print(f"{'method':<8}{'time s':>10}{'peak RSS MB':>14}{'RSS after imports MB':>23}")
        for method, r in results.items():
            print(f"{method:<8}{r['seconds']:>10.2f}{r['peak_mb']:>14.0f}{r['start_mb']:>23.0f}")
        print(f"max |stream - peft| over all tensors: {max_difference(root / 'out-stream', root / 'out-peft'):.3g}")
        memory = results["peft"]["peak_mb"] / results["stream"]["peak_mb"]
        speed = results["peft"]["seconds"] / results["stream"]["seconds"]
        print(f"memory_ratio={memory:.2f} time_ratio={speed:.2f}")


if __name__ == "__main__":
    main()
