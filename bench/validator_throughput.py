"""Validator throughput: one base with adapters swapped and batched generation, against a full model
load per adapter with one prompt at a time (what the peer subnets do), side by side in one run.

    python bench/validator_throughput.py [--adapters 8] [--prompts 8] [--new-tokens 128] [--threads 1]

A Llama of at least 30M parameters is built in code (random weights) with a tokenizer trained the
way the tiny base's is (``cortex.model.tokenizer``), saved as a Hugging Face folder with 8 random
rank-8 LoRA adapters. Both sides answer the same market prompts with greedy decoding and
``min_new_tokens = max_new_tokens``, so both generate exactly the same number of tokens:

  (a) ``cortex.evaluation.Generator``: the base loaded once; each adapter injected, used for all
      prompts in one left-padded batch, and unloaded;
  (b) per adapter: ``AutoModelForCausalLM.from_pretrained`` + ``PeftModel.from_pretrained``, then
      one ``generate`` per prompt (batch 1).

It also times a large fp32 matmul for the machine's GFLOP/s and reports each side's model FLOP/s
(2 × parameters × tokens processed) against it. The last line is ``ratio=<(b) time / (a) time>``.
"""

from __future__ import annotations

import argparse
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
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, task_type="CAUSAL_LM", target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
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


def swapped(base: Path, adapters: list[Path], chats, new_tokens: int) -> tuple[float, int]:
    """(a) one base load, adapters swapped, all prompts in one batch per adapter."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cortex.evaluation import Generator

    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model.generation_config.min_new_tokens = new_tokens  # the same token count as (b)
    generator = Generator(model, AutoTokenizer.from_pretrained(base), max_new_tokens=new_tokens,
                          batch_size=len(chats))
    tokens = 0
    for adapter in adapters:
        _, n = generator.generate(chats, adapter)
        tokens += n
    return time.perf_counter() - started, tokens


def reloaded(base: Path, adapters: list[Path], chats, new_tokens: int) -> tuple[float, int]:
    """(b) a full model load per adapter, one prompt at a time."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started, tokens = time.perf_counter(), 0
    for adapter in adapters:
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
                                          str(adapter)).eval()
        for chat in chats:
            ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_dict=True,
                                                return_tensors="pt")
            with torch.inference_mode():
                out = model.generate(**ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id)
            tokens += out.shape[1] - ids["input_ids"].shape[1]
        del model
    return time.perf_counter() - started, tokens


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
        results = {}
        for label, run in (("(a) one base, adapters swapped, batched", swapped),
                           ("(b) full load per adapter, batch 1", reloaded)):
            seconds, tokens = run(base, adapters, chats, args.new_tokens)
            expected = len(adapters) * len(chats) * args.new_tokens
            assert tokens == expected, f"{label}: generated {tokens} tokens, expected {expected}"
            flops = 2 * params * (tokens + prompt_tokens) / seconds / 1e9
            results[label] = seconds
            print(f"{label:<42} {seconds:7.1f} s  {tokens / seconds:7.1f} new tokens/s  "
                  f"{flops:6.1f} model GFLOP/s ({100 * flops / gflops:4.1f}% of matmul; 2 x params x "
                  f"{tokens} new + {prompt_tokens} prompt tokens)")
        a, b = results.values()
        print(f"ratio={b / a:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
