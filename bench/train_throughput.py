"""Training throughput: tokens per second for LoRA, DoRA (and full fine-tuning) on the same model and
data in one run, and the fraction of the machine's measured matmul throughput that training reaches.

The model is a base folder (``--base DIR``, e.g. from ``cortex base bootstrap``) or, by default, the
tiny Llama built in code with random weights and a tokenizer trained on the data. The data is the
synthetic market's chats (the same rows for every method). Each method runs ``--steps`` timed
optimizer steps (forward, backward, AdamW) after ``--warmup`` untimed ones; methods alternate over
``--trials`` so that a machine shared with other jobs slows all of them alike; the median is kept.

FLOPs counted per token (N = the weights of every linear layer incl. the output layer, A = the
adapter's weights, attn = 4 x layers x hidden x mean attended length, the forward attention matmuls):
    full:       6N + 3 attn                  (forward 2N, backward 4N: activation and weight grads)
    LoRA/DoRA:  4N + 3 attn + 6A             (frozen weights need activation grads only: no 2N weight grads)
DoRA's per-step weight-norm work (||W + sBA|| of every module, token-independent) is overhead and is
not counted, so it shows up as a lower fraction. The matmul reference is the best of several fp32
``torch.mm`` of size ``--matmul`` on the same threads. Run: .venv/bin/python bench/train_throughput.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cortex import hub_kernels  # noqa: E402 - importing cortex turns Hub kernels off
from cortex.adapter import LLAMA_TARGETS  # noqa: E402

TARGETS = list(LLAMA_TARGETS)


def matmul_gflops(n: int, seconds: float = 2.0) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def load_data(rows: int):
    import datasets

    from cortex.data.dataset import BuildConfig, build_dataset

    tmp = tempfile.mkdtemp(prefix="bench-data-")
    build_dataset(BuildConfig(source="synthetic", out=f"{tmp}/d", start="2023-06-01", stride=2, progress=False))
    train = datasets.load_from_disk(f"{tmp}/d")["train"]
    return [list(m) for m in train.select(range(min(rows, len(train))))["messages"]]


def model_and_tokenizer(base: str | None, chats):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if base:
        return (AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, **hub_kernels.load_kwargs()),
                AutoTokenizer.from_pretrained(base))
    from cortex.model.tiny import TinyConfig, build_model
    from cortex.model.tokenizer import chat_corpus, train_tokenizer

    tokenizer = train_tokenizer(chat_corpus(chats))
    return build_model(TinyConfig(), tokenizer, seed=0), tokenizer


def batches(tokenizer, chats, batch: int):
    from cortex.model.pretrain import collate, encode_chat

    encoded = [encode_chat(tokenizer, c, 1024) for c in chats]
    return [collate(encoded[i:i + batch], tokenizer.pad_token_id) for i in range(0, len(encoded) - batch + 1, batch)]


def flops_per_token(model, method: str, adapter_params: int, mean_context: float) -> float:
    import torch

    cfg = model.config
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    attn = 4 * cfg.num_hidden_layers * cfg.hidden_size * mean_context
    if method == "full":
        return 6 * linear + 3 * attn
    return 4 * linear + 3 * attn + 6 * adapter_params


def run_method(base_model, method: str, data, steps: int, warmup: int, rank: int) -> tuple[float, int, float]:
    """(tokens per second, trainable parameters, mean attended length) for ``steps`` timed steps."""
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    model = copy.deepcopy(base_model).train()
    if method != "full":
        config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=TARGETS, use_dora=method == "dora",
                            task_type="CAUSAL_LM")
        model = get_peft_model(model, config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    tokens, seconds, contexts = 0, 0.0, []
    for i in range(warmup + steps):
        batch = data[i % len(data)]
        t = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= warmup:
            seconds += time.perf_counter() - t
            lengths = batch["attention_mask"].sum(1)
            tokens += int(lengths.sum())
            contexts.extend(((lengths + 1) / 2).tolist())
    return tokens / seconds, sum(p.numel() for p in params), statistics.mean(contexts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", help="a base folder (default: the tiny Llama built in code)")
    p.add_argument("--methods", default="lora,dora,full")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--matmul", type=int, default=1024, help="size of the reference fp32 matmul")
    args = p.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    chats = load_data(args.batch * (args.steps + args.warmup))
    model, tokenizer = model_and_tokenizer(args.base, chats)
    data = batches(tokenizer, chats, args.batch)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f}M parameters ({'base ' + args.base if args.base else 'tiny Llama, random'}), "
          f"batch {args.batch}, {torch.get_num_threads()} threads, {args.steps} timed steps x {args.trials} trials")
    peak = matmul_gflops(args.matmul)
    print(f"matmul: {peak:.1f} GFLOP/s (fp32 {args.matmul}x{args.matmul}, best of 2 s)")
    results: dict[str, list[float]] = {m: [] for m in methods}
    info: dict[str, tuple[int, float]] = {}
    for trial in range(args.trials):
        for method in methods:
            tps, trainable, context = run_method(model, method, data, args.steps, args.warmup, args.rank)
            results[method].append(tps)
            info[method] = (trainable, context)
        peak = max(peak, matmul_gflops(args.matmul, 0.5))  # the reference is re-measured between trials
    print(f"{'method':<6} {'tokens/s':>9} {'trainable':>10} {'GFLOP/token':>12} {'GFLOP/s':>8} {'of matmul':>9}")
    summary = {}
    for method in methods:
        tps = statistics.median(results[method])
        trainable, context = info[method]
        fpt = flops_per_token(model, method, trainable if method != "full" else 0, context)
        achieved = tps * fpt / 1e9
        summary[method] = tps
        print(f"{method:<6} {tps:>9.0f} {trainable:>10,} {fpt / 1e9:>12.4f} {achieved:>8.1f} {achieved / peak:>9.1%}")
    if "lora" in summary and "dora" in summary:
        print(f"dora_vs_lora_tokens_per_second={summary['dora'] / summary['lora']:.2f}")


if __name__ == "__main__":
    main()
