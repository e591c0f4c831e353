"""Validator throughput: one base with adapters swapped and batched generation, against a full model
load per adapter with one prompt at a time (what the peer subnets do), side by side in one run.

    python bench/validator_throughput.py [--adapters 8] [--prompts 8] [--new-tokens 128] [--threads 1]

A Llama of at least 30M parameters is built in code (random weights) with a tokenizer trained the
way the tiny base's is (``cortex.model.tokenizer``), saved as a Hugging Face folder with 8 random
rank-8 LoRA adapters. Both sides answer the same market prompts with greedy decoding and
``min_new_tokens = max_new_tokens``, so both generate exactly the same number of tokens:

  (a) ``cortex.eval.generate.Generator``: the base loaded once; each adapter injected, used for all
      prompts in one left-padded batch, and unloaded;
  (b) per adapter: ``AutoModelForCausalLM.from_pretrained`` + ``PeftModel.from_pretrained``, then
      one ``generate`` per prompt (batch 1).

The two sides take turns adapter by adapter (other load on the machine falls on both alike); each
side's wall and CPU seconds are summed. It also times a large fp32 matmul for the machine's GFLOP/s
and reports each side's model FLOP/s (2 × parameters × tokens processed) against it. The last
line is ``ratio=<(b) wall time / (a) wall time>``.
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

import torch


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - started) / 1e9


def build(root: Path, adapters: int, prompts: int, seed: int = 0):
    """The base folder, the adapter folders and the chat prompts."""
    from peft import LoraConfig, get_peft_model

    from cortex.adapter import LLAMA_TARGETS
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
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, task_type="CAUSAL_LM",
                                                    target_modules=list(LLAMA_TARGETS)))
    folders = []
    for i in range(adapters):
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.02)
        peft_model.save_pretrained(root / f"adapter-{i}")
        folders.append(root / f"adapter-{i}")
    step = max(1, len(samples) // prompts)
    chats = [s.prompt for s in samples[::step][:prompts]]
    lengths = [len(tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
               for c in chats]
    return base, folders, chats, parameter_count(model), lengths


class Clock:
    """Wall and CPU seconds per side; the sides take turns adapter by adapter, so that other load
    on the machine falls on both alike."""

    def __init__(self) -> None:
        self.wall = {"a": 0.0, "b": 0.0}
        self.cpu = {"a": 0.0, "b": 0.0}
        self.tokens = {"a": 0, "b": 0}

    @contextlib.contextmanager
    def side(self, name: str):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] += time.perf_counter() - wall
            self.cpu[name] += time.process_time() - cpu


def load_swapped(base: Path, chats, new_tokens: int):
    """(a) the one base load: a ``Generator`` that swaps adapters and batches all prompts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cortex.eval.generate import Generator

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model.generation_config.min_new_tokens = new_tokens  # the same token count as (b)
    return Generator(model, AutoTokenizer.from_pretrained(base), max_new_tokens=new_tokens, batch_size=len(chats))


def reloaded(base: Path, adapter: Path, chats, new_tokens: int) -> int:
    """(b) for one adapter: a full model load, then one prompt at a time; returns the new tokens."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
                                      str(adapter)).eval()
    tokens = 0
    for chat in chats:
        ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_dict=True, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        tokens += out.shape[1] - ids["input_ids"].shape[1]
    return tokens


def measure(base: Path, adapters: list[Path], chats, new_tokens: int) -> Clock:
    clock = Clock()
    with clock.side("a"):
        generator = load_swapped(base, chats, new_tokens)
    for adapter in adapters:
        with clock.side("a"):
            clock.tokens["a"] += generator.generate(chats, adapter)[1]
        with clock.side("b"):
            clock.tokens["b"] += reloaded(base, adapter, chats, new_tokens)
    return clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads for both sides (default 1: on small models thread hand-offs cost more "
                             "than they save; on the 2-core development machine 2 threads run 3x slower)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import logging
    import warnings

    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("cortex").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    root = Path(tempfile.mkdtemp(prefix="cortex-bench-"))
    try:
        gflops = matmul_gflops()
        base, adapters, chats, params, lengths = build(root, args.adapters, args.prompts)
        prompt_tokens = sum(lengths) * len(adapters)
        print(f"machine: {torch.get_num_threads()} torch threads, fp32 matmul {gflops:.1f} GFLOP/s")
        print(f"base: Llama, {params / 1e6:.1f}M parameters, random weights; {len(adapters)} rank-8 LoRA adapters; "
              f"{len(chats)} prompts of {min(lengths)}-{max(lengths)} tokens; {args.new_tokens} new tokens each")
        clock = measure(base, adapters, chats, args.new_tokens)
        expected = len(adapters) * len(chats) * args.new_tokens
        labels = {"a": "(a) one base, adapters swapped, batched", "b": "(b) full load per adapter, batch 1"}
        for side, label in labels.items():
            seconds, tokens = clock.wall[side], clock.tokens[side]
            assert tokens == expected, f"{label}: generated {tokens} tokens, expected {expected}"
            flops = 2 * params * (tokens + prompt_tokens) / seconds / 1e9
            print(f"{label:<42} {seconds:7.1f} s ({clock.cpu[side]:6.1f} s CPU)  {tokens / seconds:6.1f} new tokens/s  "
                  f"{flops:5.1f} model GFLOP/s = {100 * flops / gflops:4.1f}% of matmul")
        print(f"model FLOPs: 2 x {params / 1e6:.1f}M params x ({expected} new + {prompt_tokens} prompt tokens) per side; "
              f"CPU-time ratio {clock.cpu['b'] / clock.cpu['a']:.2f}")
        print(f"ratio={clock.wall['b'] / clock.wall['a']:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
