"""GPU smoke run of the miner: LoRA SFT, QLoRA SFT and the held-out check on one GPU, with figures.

A random-initialised base of the Llama-3.1-8B shape (``--shape 1b``: the Llama-3.2-1B shape, when
time is short; the output names the shape) in bf16 on the GPU, with the real Llama 3.1 chat
template (tests/data/chat_templates/llama3_1.jinja) and its special tokens, a small byte-level
tokenizer learned from the synthetic market's texts, and the synthetic dataset. Then, through the
miner's own code (``miner.sft.make_trainer``, ``miner.training.save_adapter``,
``miner.heldout.score_heldout``):

1. LoRA SFT, ``--steps`` steps (30), rank 16 on every projection, bf16, gradient checkpointing;
2. QLoRA SFT, the same on the base in bitsandbytes 4-bit NF4 (skipped, and said so, when
   bitsandbytes cannot be imported);
3. the held-out check of the LoRA adapter against the base on the GPU (greedy generation through
   ``cortex.eval``, as validators run it).

For each training run it prints tokens/s (TRL's ``num_tokens`` over the training time), the peak GPU
memory (``torch.cuda.max_memory_allocated``) and the fraction of the GPU's bf16 peak the model
FLOPs reach: 4 x parameters x tokens (forward 2N, backward through the frozen base 2N; the frozen
weights get no gradient, the LoRA factors' FLOPs and checkpointing's recomputation are not
counted) over the dense bf16 peak (H200/H100 SXM: 989 TFLOP/s). Sized to finish in under 8 minutes
on one H200. ``--tiny`` runs the same steps on the CPU with a tiny shape (tests/bench/test_miner_gpu_bench.py).

Run it on a GPU machine through the prepared check: ``bench/gpu_wheels.py`` here, then
``bash bench/gpu_check.sh`` there (docs/benchmarks.md, "The GPU check").
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from cortex import hub_kernels  # noqa: E402 - importing cortex turns Hub kernels off
from cortex.adapter import LLAMA_TARGETS  # noqa: E402
from cortex.model.random_base import LLAMA_3_1_8B, TINY, build_base  # noqa: E402

TEMPLATE = ROOT / "tests" / "data" / "chat_templates" / "llama3_1.jinja"
LLAMA_3_2_1B = {**LLAMA_3_1_8B, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                "tie_word_embeddings": True}
SHAPES = {"8b": ("Llama-3.1-8B", LLAMA_3_1_8B), "1b": ("Llama-3.2-1B", LLAMA_3_2_1B), "tiny": ("tiny", TINY)}
BF16_PEAK = 989e12  # H100/H200 SXM dense bf16 FLOP/s (spec sheet)


def dataset(out: Path):
    import datasets

    from cortex.data.dataset import BuildConfig, build_dataset

    build_dataset(BuildConfig(source="synthetic", start="2024-03-01", stride=2, min_reward=None,
                              out=str(out / "data"), progress=False))
    return datasets.load_from_disk(str(out / "data"))


def train_once(kind: str, base: Path, rows, out: Path, args, gpu: bool) -> tuple[dict, Path]:
    from miner.config import TrainConfig
    from miner.sft import make_trainer
    from miner.training import save_adapter

    cfg = TrainConfig(finetuning_type=kind, lora_rank=16, lora_alpha=32, max_steps=args.steps,
                      per_device_train_batch_size=args.batch, cutoff_len=args.cutoff, learning_rate=2e-4,
                      warmup_ratio=0.0, logging_steps=5, save_steps=10_000, eval_steps=10_000, report_to="none",
                      gradient_checkpointing=gpu, bf16=gpu, plot_loss=False, seed=0)
    if gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer = make_trainer(cfg, base, rows, None, out / kind, targets=list(args.targets))
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    adapter = save_adapter(trainer, out / kind / "adapter")
    history = trainer.state.log_history
    tokens = max((h["num_tokens"] for h in history if "num_tokens" in h), default=0)
    frozen = sum(p.numel() for p in trainer.model.parameters() if not p.requires_grad)
    if kind == "qlora":  # bitsandbytes packs two 4-bit weights per byte: count the weights, not the bytes
        frozen = args.base_params
    figures = {"kind": kind, "steps": trainer.state.global_step, "seconds": round(seconds, 1),
               "train_runtime_s": round(result.metrics.get("train_runtime", seconds), 1), "tokens": tokens,
               "tokens_per_s": round(tokens / seconds, 1) if seconds else None,
               "loss_first": next((h["loss"] for h in history if "loss" in h), None),
               "loss_last": next((h["loss"] for h in reversed(history) if "loss" in h), None),
               "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)}
    if gpu:
        figures["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        figures["model_tflops_per_s"] = round(4 * frozen * tokens / seconds / 1e12, 1)
        figures["fraction_of_bf16_peak"] = round(4 * frozen * tokens / seconds / BF16_PEAK, 3)
    del trainer
    gc.collect()
    if gpu:
        torch.cuda.empty_cache()
    return figures, adapter


def heldout(base: Path, adapter: Path, rows, args) -> dict:
    from cortex.protocol.competition import CORTEX_8B
    from miner.heldout import score_heldout

    started = time.perf_counter()
    scores = score_heldout(base, {"base": None, "adapter": adapter}, rows, CORTEX_8B, max_new_tokens=args.max_new_tokens)
    return {"prompts": len(rows), "max_new_tokens": args.max_new_tokens, "seconds": round(time.perf_counter() - started, 1),
            **{k: v for k, v in scores.items() if k.startswith(("heldout_reward", "heldout_seconds", "heldout_failure"))}}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="a tiny shape on the CPU, a few steps (the test's mode)")
    hub_kernels.add_flag(p)
    p.add_argument("--shape", choices=("8b", "1b"), default="8b", help="the random base's Llama shape on the GPU")
    p.add_argument("--steps", type=int, default=None, help="training steps per run (30; --tiny: 2)")
    p.add_argument("--batch", type=int, default=None, help="rows per step (8; --tiny: 2)")
    p.add_argument("--cutoff", type=int, default=2048, help="tokens per training sequence")
    p.add_argument("--heldout", type=int, default=None, help="held-out prompts (16; --tiny: 2)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="held-out generation budget (64; --tiny: 8)")
    p.add_argument("--out", default="/tmp/gpu_miner", help="work folder (the base is written here)")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = p.parse_args(argv)
    hub_kernels.apply_flag(args)
    gpu = not args.tiny
    if gpu and not torch.cuda.is_available():
        p.error("no GPU visible: run with --tiny on a CPU")
    tiny = args.tiny
    args.steps = args.steps or (2 if tiny else 30)
    args.batch = args.batch or (2 if tiny else 8)
    args.heldout = args.heldout or (2 if tiny else 16)
    args.max_new_tokens = args.max_new_tokens or (8 if tiny else 64)
    args.targets = LLAMA_TARGETS
    shape_name, shape = SHAPES["tiny" if tiny else args.shape]
    out = Path(args.out)
    report: dict = {"shape": shape_name, "device": torch.cuda.get_device_name() if gpu else "cpu",
                    "torch": torch.__version__}
    started = time.perf_counter()

    dd = dataset(out)
    texts = [m["content"] for row in dd["train"].select(range(60)) for m in row["messages"]]
    t = time.perf_counter()
    base = build_base(out / "base", "llama3", TEMPLATE.read_text(), texts, shape=shape,
                      dtype=torch.bfloat16 if gpu else torch.float32, device="cuda" if gpu else "cpu")
    config = json.loads((base / "config.json").read_text())
    args.base_params = _params(config)
    report["base"] = {"params": args.base_params, "seconds_to_build_and_save": round(time.perf_counter() - t, 1)}
    if gpu:
        torch.cuda.empty_cache()
    rows = dd["train"].select(range(min(len(dd["train"]), args.steps * args.batch)))

    report["lora"], adapter = train_once("lora", base, rows, out, args, gpu)
    print(json.dumps({"lora": report["lora"]}), flush=True)
    if gpu and importlib.util.find_spec("bitsandbytes") is not None:
        report["qlora"], _ = train_once("qlora", base, rows, out, args, gpu)
    else:
        report["qlora"] = "skipped: " + ("no GPU (--tiny)" if not gpu else "bitsandbytes cannot be imported")
    print(json.dumps({"qlora": report["qlora"]}), flush=True)
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    test = [dict(r) for r in dd["test"].select(range(min(args.heldout, len(dd["test"]))))]
    report["heldout"] = heldout(base, adapter, test, args)
    if gpu:
        report["heldout"]["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=1), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return report


def _params(config: dict) -> int:
    """A Llama's parameter count from its config (embeddings, attention, MLP, norms, head)."""
    h, i, n, v = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"], config["vocab_size"]
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    d = config.get("head_dim") or h // heads
    layer = h * heads * d * 2 + h * kv * d * 2 + 3 * h * i + 2 * h
    return v * h * (1 if config.get("tie_word_embeddings") else 2) + n * layer + h


if __name__ == "__main__":
    main()
