"""Validator throughput: the validator's multi-LoRA engine (one base, every adapter x prompt row in
one batch, grouped LoRA matmuls) against a full model load per adapter with one prompt at a time
(what the peer subnets do), side by side in one run.

    python bench/validator_throughput.py [--adapters 8] [--prompts 8] [--new-tokens 256] [--threads N]

A Llama of at least 30M parameters is built in code (random weights) with a tokenizer trained the
way the tiny base's is (``cortex.model.tokenizer``), saved as a Hugging Face folder with 8 random
rank-8 LoRA adapters. Both sides answer the same market prompts with greedy decoding and
``min_new_tokens = max_new_tokens``, so both generate exactly the same number of tokens:

  (a) ``cortex.eval.engines.MultiLoraEngine``, what a validator runs for a LoRA-only competition:
      the base loaded once (``cortex.eval.base``), the adapters loaded side by side (peft), and every
      (adapter, prompt) row in batches of ``--batch`` rows (default: all of them), each LoRA layer
      adding every adapter's part in two batched matmuls (``cortex.eval.grouped_lora``);
      ``--peft-mixed`` runs it with peft's own mixed-adapter batches instead (a loop over the
      adapters in every layer) for comparison;
  (b) per adapter: ``AutoModelForCausalLM.from_pretrained`` + ``PeftModel.from_pretrained``, then
      one ``generate`` per prompt (batch 1).

The sides are interleaved: (a) runs ``--a-runs`` times, between slices of (b)'s adapters, so that
other load on a shared machine falls on both alike; (a)'s time is the mean of its runs, (b)'s the sum
over its adapters. The machine's fp32 matmul rate is measured as in ``bench/train_throughput.py``
(the same function), and each side's model FLOP/s (2 x parameters x tokens processed) is reported
against it, per wall second and per CPU second of the process (on a shared machine the process
gets only part of a core). Both sides get the same torch threads (default: torch's own choice, one
per core): batched generation uses them, one prompt at a time barely can. The last line is
``ratio=<(b) wall time / (a) wall time>``.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cortex import hub_kernels  # noqa: E402 - importing cortex turns Hub kernels off

import torch

from bench.gpu_validator import random_adapters
from bench.train_throughput import matmul_gflops


def build(root: Path, adapters: int, prompts: int, seed: int = 0):
    """The base folder, the adapter folders and the chat prompts."""
    from cortex.data import build_samples, get_source
    from cortex.model.tiny import TinyConfig, build_model, parameter_count
    from cortex.model.tokenizer import chat_corpus, train_tokenizer

    frames = get_source("synthetic").load(["BTC", "ETH", "SOL", "NEAR"], "2023-01-01", "2024-12-31")
    samples = build_samples(frames, ["BTC", "ETH", "SOL", "NEAR"], [1, 7], start="2024-01-01", stride=3)
    tokenizer = train_tokenizer(chat_corpus(s.prompt for s in samples[::4]), vocab_size=4096)
    # Llama-3.3-70B's shape in miniature: 8 query heads per KV head (grouped-query attention), MLP ~3x wide
    cfg = TinyConfig(hidden_size=512, num_hidden_layers=10, num_attention_heads=8, num_key_value_heads=1,
                     intermediate_size=1536)
    model = build_model(cfg, tokenizer, seed=seed)
    base = root / "base"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    torch.manual_seed(seed)
    folders = random_adapters(model, root, adapters, rank=8)
    step = max(1, len(samples) // prompts)
    rows = [s.row() for s in samples[::step][:prompts]]
    lengths = [len(tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=True,
                                                 return_dict=True)["input_ids"]) for r in rows]
    return base, folders, rows, parameter_count(model), lengths


class Clock:
    """Wall and CPU seconds and new tokens per side."""

    def __init__(self) -> None:
        self.wall = {"a": [], "b": []}
        self.cpu = {"a": [], "b": []}
        self.tokens = {"a": [], "b": []}

    @contextlib.contextmanager
    def side(self, name: str):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name].append(time.perf_counter() - wall)
            self.cpu[name].append(time.process_time() - cpu)


def engine_run(base: Path, adapters: list[Path], rows, new_tokens: int, batch: int, grouped: bool = True) -> int:
    """(a) one validator engine: load the base once, every adapter x prompt in mixed batches; new tokens."""
    from cortex.eval.engines import EngineOptions, Job, MultiLoraEngine
    from cortex.eval.generate import Generator
    from cortex.reward import RewardConfig

    generator = Generator.load(base, device="cpu", max_new_tokens=new_tokens, batch_size=batch)
    generator.model.generation_config.min_new_tokens = new_tokens  # the same token count as (b)
    generator.grouped = grouped
    engine = MultiLoraEngine(generator=generator, max_new_tokens=new_tokens, batch_size=batch,
                             options=EngineOptions(device="cpu", max_loras=len(adapters)))
    jobs = [Job(f"adapter-{i}", path) for i, path in enumerate(adapters)]
    results = list(engine.evaluate(rows, jobs, reward=RewardConfig(), time_budget=1e9))
    failed = [r for r in results if r.reason]
    assert not failed, failed[0].reason
    return sum(r.new_tokens for r in results)


def reloaded(base: Path, adapter: Path, rows, new_tokens: int) -> int:
    """(b) for one adapter: a full model load, then one prompt at a time; returns the new tokens."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, **hub_kernels.load_kwargs()),
                                      str(adapter)).eval()
    tokens = 0
    for row in rows:
        ids = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, return_dict=True,
                                            return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        tokens += out.shape[1] - ids["input_ids"].shape[1]
    return tokens


def measure(base: Path, adapters: list[Path], rows, new_tokens: int, batch: int, a_runs: int,
            grouped: bool = True) -> Clock:
    """(a) ``a_runs`` times, each followed by a slice of (b)'s adapters."""
    clock = Clock()
    slices = [adapters[i::a_runs] for i in range(a_runs)]
    for part in slices:
        with clock.side("a"):
            clock.tokens["a"].append(engine_run(base, adapters, rows, new_tokens, batch, grouped))
        for adapter in part:
            with clock.side("b"):
                clock.tokens["b"].append(reloaded(base, adapter, rows, new_tokens))
    return clock


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=256, help="new tokens per answer (cortex-tiny's budget)")
    parser.add_argument("--batch", type=int, default=0, help="(a)'s rows per generate (0: adapters x prompts)")
    parser.add_argument("--a-runs", type=int, default=2, help="(a) runs, interleaved with slices of (b)")
    parser.add_argument("--matmul", type=int, default=1024, help="size of the reference fp32 matmul")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads for both sides (default 0: torch's choice, one per core; on a machine "
                             "shared with other jobs 1 is often faster)")
    parser.add_argument("--peft-mixed", action="store_true",
                        help="(a) with peft's mixed-adapter batches instead of grouped LoRA matmuls")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import logging
    import warnings

    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("cortex").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    root = Path(tempfile.mkdtemp(prefix="cortex-bench-"))
    try:
        base, adapters, rows, params, lengths = build(root, args.adapters, args.prompts)
        batch = args.batch or len(adapters) * len(rows)
        prompt_tokens = sum(lengths) * len(adapters)
        gflops = matmul_gflops(args.matmul)
        print(f"machine: {torch.get_num_threads()} torch threads, fp32 matmul {gflops:.1f} GFLOP/s "
              f"({args.matmul}x{args.matmul}, best of 2 s, bench/train_throughput.py)")
        print(f"base: Llama, {params / 1e6:.1f}M parameters, random weights; {len(adapters)} rank-8 LoRA adapters; "
              f"{len(rows)} prompts of {min(lengths)}-{max(lengths)} tokens; {args.new_tokens} new tokens each; "
              f"(a) in mixed batches of {batch} rows")
        clock = measure(base, adapters, rows, args.new_tokens, batch, max(1, min(args.a_runs, len(adapters))),
                        grouped=not args.peft_mixed)
        gflops = max(gflops, matmul_gflops(args.matmul, 0.5))  # re-measured after the run
        per_thread = gflops / torch.get_num_threads()  # what one CPU second can do
        expected = len(adapters) * len(rows) * args.new_tokens
        seconds = {"a": sum(clock.wall["a"]) / len(clock.wall["a"]), "b": sum(clock.wall["b"])}
        cpu = {"a": sum(clock.cpu["a"]) / len(clock.cpu["a"]), "b": sum(clock.cpu["b"])}
        tokens = {"a": clock.tokens["a"][0], "b": sum(clock.tokens["b"])}
        labels = {"a": "(a) validator engine, " + ("peft mixed batches" if args.peft_mixed else "grouped LoRA"),
                  "b": "(b) full load per adapter, batch 1"}
        for side, label in labels.items():
            assert tokens[side] == expected, f"{label}: generated {tokens[side]} tokens, expected {expected}"
            work = 2 * params * (tokens[side] + prompt_tokens) / 1e9
            flops = work / seconds[side]
            print(f"{label:<42} {seconds[side]:7.1f} s ({cpu[side]:6.1f} s CPU)  "
                  f"{tokens[side] / seconds[side]:6.1f} new tokens/s  {flops:5.1f} model GFLOP/s = "
                  f"{100 * flops / gflops:4.1f}% of matmul ({100 * work / cpu[side] / per_thread:4.1f}% per CPU second)")
        print(f"(a) runs: {', '.join(f'{s:.1f} s' for s in clock.wall['a'])}; model FLOPs: 2 x {params / 1e6:.1f}M params "
              f"x ({expected} new + {prompt_tokens} prompt tokens) per side; CPU-time ratio {cpu['b'] / cpu['a']:.2f}")
        print(f"ratio={seconds['b'] / seconds['a']:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
