"""GPU validator benchmark: the validator's multi-LoRA engine against reloading the base per adapter,
on a random-initialised base of the Llama-3.1-8B shape in bf16.

    python bench/gpu_validator.py                 # one GPU, under 8 minutes (prepared; see docs/benchmarks.md)
    python bench/gpu_validator.py --tiny          # a tiny Llama on the CPU: the smoke test of the same code

Needs only torch, transformers, peft and accelerate (and this checkout): no download, no data set.
The base has Llama-3.1-8B's shape (32 layers, hidden 4096, MLP 14336, 32 query / 8 KV heads) with
random weights and a 4,096-token byte-level BPE vocabulary trained on the prompts
(``cortex.model.tokenizer``; the real 128,256-token vocabulary would add 0.5B parameters of
embeddings and output layer). It is saved as a Hugging Face folder with ``--adapters`` random
rank-``--rank`` LoRA adapters on every attention and MLP projection. ``--prompts`` market-style
chats of a few hundred tokens are answered with greedy decoding and exactly ``--new-tokens`` new
tokens each (``min_new_tokens = max_new_tokens``):

  (a) ``cortex.eval.engines.MultiLoraEngine``, what a validator runs for a LoRA-only competition:
      the base loaded once by ``cortex.eval.base`` (bf16, ``device_map``), every adapter loaded
      side by side, every (adapter, prompt) row in batches of ``--batch`` rows with grouped LoRA
      matmuls (``cortex.eval.grouped_lora``; ``--peft-mixed``: peft's mixed-adapter batches);
  (b) reload per adapter: ``AutoModelForCausalLM.from_pretrained`` + ``PeftModel.from_pretrained``
      for each adapter, its prompts in one batch, timed on the first ``--reload-adapters`` adapters
      (each adapter is the same amount of work, so the rate holds for all of them).

With ``--static-cache``, (a) runs a second time with the engine's static KV cache
(``--engine.kv-cache static``: transformers' ``StaticCache``; on CUDA the grouped decode step compiled by
inductor with CUDA graphs, ``mode="reduce-overhead"``), after one untimed warm-up batch of the same
shape, and is reported beside the dynamic cache: its rate, its fraction of the bandwidth bound, and
the rows whose text differs from the dynamic cache's.

Prints the new tokens per second of each side and ``ratio=<(a) tokens/s / (b) tokens/s>`` last.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cortex import hub_kernels  # noqa: E402 - importing cortex turns Hub kernels off

import torch

LLAMA_31_8B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                   num_key_value_heads=8, max_position_embeddings=8192)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=2048)
ASSETS = ("BTC", "ETH", "SOL", "NEAR", "AVAX", "LINK")


def chats(n: int, days: int = 30, seed: int = 0) -> list[list[dict[str, str]]]:
    """Market-style prompts (no data set needed): a system line, then features of one asset."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        asset, horizon = rng.choice(ASSETS), rng.choice((1, 7))
        lines = [f"{asset} daily candles up to the cutoff, oldest first:"]
        price = rng.uniform(1, 60000)
        for day in range(days):
            price *= 1 + rng.gauss(0, 0.03)
            lines.append(f"day -{days - day}: close {price:.2f}, volume {rng.uniform(1e5, 1e8):.0f}, "
                         f"return {rng.gauss(0, 3):+.1f}%")
        lines.append(f"Forecast the close {horizon} days after the cutoff (asset {asset}, horizon_days {horizon}).")
        out.append([{"role": "system", "content": "You forecast crypto markets. Think, then answer in JSON."},
                    {"role": "user", "content": "\n".join(lines)}])
    return out


def build(root: Path, shape: dict, prompts, adapters: int, rank: int, device: str, dtype: torch.dtype):
    """The base folder (random weights, saved), the adapter folders and the parameter count."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from cortex.model.tokenizer import chat_corpus, train_tokenizer

    tokenizer = train_tokenizer(chat_corpus(prompts), vocab_size=4096)
    config = LlamaConfig(vocab_size=-(-len(tokenizer) // 64) * 64, rope_theta=500000.0, rms_norm_eps=1e-5,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False, **shape)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=dtype)
    params = sum(p.numel() for p in model.parameters())
    base = root / "base"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    folders = random_adapters(model, root, adapters, rank)
    del model
    _free()
    return base, folders, params


def random_adapters(model, root: Path, n: int, rank: int) -> list[Path]:
    """``n`` LoRA adapters of ``model`` with random weights on every projection, saved under ``root``."""
    from peft import LoraConfig, get_peft_model

    from cortex.adapter import LLAMA_TARGETS

    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(LLAMA_TARGETS)))
    folders = []
    for i in range(n):
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.02)
        peft_model.save_pretrained(root / f"adapter-{i:02d}")
        folders.append(root / f"adapter-{i:02d}")
    return folders


def _free() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def load_generator(base: Path, new_tokens: int, batch: int, device: str, kv_cache: str = "dynamic"):
    """The validator's generator on ``base``, every row made to produce exactly ``new_tokens``; with
    ``kv_cache="static"`` the engine's static cache, its decode step compiled on CUDA (``--engine.compile auto``)."""
    from cortex.eval.generate import Generator

    generator = Generator.load(base, device=device, max_new_tokens=new_tokens, batch_size=batch, kv_cache=kv_cache)
    generator.model.generation_config.min_new_tokens = new_tokens
    return generator


def engine_run(generator, adapters: list[Path], prompts, *, max_loras: int, rank: int, grouped: bool = True):
    """Every (adapter, prompt) row through the validator's multi-LoRA engine: {key: ModelScore}, seconds."""
    from cortex.eval.engines import EngineOptions, Job, MultiLoraEngine
    from cortex.reward import RewardConfig

    generator.grouped = grouped
    engine = MultiLoraEngine(generator=generator, max_new_tokens=generator.max_new_tokens,
                             batch_size=generator.batch_size, max_rank=rank,
                             options=EngineOptions(device=str(generator.device), max_loras=max_loras))
    rows = [{"prompt": p, "asset": "BTC", "horizon_days": 1, "outcome_return": 0.01, "realized_vol": 0.03}
            for p in prompts]
    started = time.perf_counter()
    results = {r.key: r for r in engine.evaluate(rows, [Job(f"adapter-{i}", a) for i, a in enumerate(adapters)],
                                                 reward=RewardConfig(), time_budget=1e9)}
    _sync()
    failed = [r for r in results.values() if r.reason]
    if failed:
        raise SystemExit(f"(a) failed: {failed[0].key}: {failed[0].reason}")
    return results, time.perf_counter() - started


def engine_side(base: Path, adapters: list[Path], prompts, new_tokens: int, batch: int, device: str,
                grouped: bool = True, rank: int = 0, kv_cache: str = "dynamic") -> tuple[float, dict, float, float]:
    """(a) the validator's engine: one base load, mixed-adapter batches; (seconds, {key: ModelScore},
    generation seconds, warm-up seconds). With the static cache, one batch of the timed shape runs first
    (untimed, in ``seconds`` but not in the generation seconds): it compiles the decode step and records
    its CUDA graphs."""
    started = time.perf_counter()
    generator = load_generator(base, new_tokens, batch, device, kv_cache)
    warmup = 0.0
    if kv_cache == "static":
        _, warmup = engine_run(generator, adapters[:1], prompts, max_loras=len(adapters), rank=rank, grouped=grouped)
    results, generating = engine_run(generator, adapters, prompts, max_loras=len(adapters), rank=rank,
                                     grouped=grouped)
    seconds = time.perf_counter() - started
    del generator
    _free()
    return seconds, results, generating, warmup


def differing(reference: dict, other: dict) -> dict:
    """How far two runs' answers to the same rows are apart: rows whose text differs, the largest change of
    a model's mean reward."""
    rows = differ = 0
    worst = 0.0
    for key, ref in reference.items():
        rows += len(ref.completions)
        differ += sum(a != b for a, b in zip(ref.completions, other[key].completions))
        worst = max(worst, abs(ref.mean_reward - other[key].mean_reward))
    return {"rows": rows, "rows_differing": differ, "fraction_differing": differ / max(rows, 1),
            "largest_score_change": worst}


def agreement(base: Path, adapters: list[Path], prompts, new_tokens: int, batch: int, small: int, device: str,
              rank: int) -> dict:
    """Do two honest validators give one (adapter, prompt) the same answer? Three runs of the same rows:
    the competition's batch with every adapter together; the same batch with the adapters in reverse
    order, two at a time (other co-tenants, other groups); and a batch of ``small`` rows (a validator
    that ignored the competition's batch size). Fraction of rows whose text differs, largest change
    of a model's mean reward."""
    generator = load_generator(base, new_tokens, batch, device)
    reference, _ = engine_run(generator, adapters, prompts, max_loras=len(adapters), rank=rank)
    shuffled, _ = engine_run(generator, adapters[::-1], prompts, max_loras=2, rank=rank)
    shuffled = {f"adapter-{len(adapters) - 1 - int(k.split('-')[1])}": v for k, v in shuffled.items()}
    generator.batch_size = small
    resized, _ = engine_run(generator, adapters, prompts, max_loras=len(adapters), rank=rank)
    del generator
    _free()
    return {"same_batch_other_cotenants": differing(reference, shuffled),
            f"batch_{small}_vs_{batch}": differing(reference, resized)}


def copy_rate(device: str) -> float:
    """Measured device memory bandwidth in bytes/s: a 1 GiB on-device copy (read + write), best of 5."""
    if device == "cpu":
        return float("nan")
    src = torch.empty(1 << 30, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(5):
        _sync()
        t = time.perf_counter()
        dst.copy_(src)
        _sync()
        best = min(best, time.perf_counter() - t)
    del src, dst
    return 2 * (1 << 30) / best


def decode_bound(params: int, shape: dict, rows: int, prompt_tokens: int, new_tokens: int, dtype_bytes: int,
                 adapters_bytes: int, rate: float) -> float:
    """Seconds one decode step of ``rows`` rows needs at least: every weight and the KV cache (at the
    mean length) read once, at the measured copy rate."""
    head_dim = shape["hidden_size"] // shape["num_attention_heads"]
    kv_per_token = 2 * shape["num_hidden_layers"] * shape["num_key_value_heads"] * head_dim * dtype_bytes
    kv = rows * (prompt_tokens + new_tokens / 2) * kv_per_token
    return (params * dtype_bytes + adapters_bytes + kv) / rate


def reload_side(base: Path, adapters: list[Path], prompts, new_tokens: int, device: str,
                dtype: torch.dtype) -> tuple[float, int]:
    """(b) per adapter: a full model load, then its prompts in one batch; (seconds, new tokens)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cortex.eval.generate import eos_ids, generated_lengths

    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.padding_side = "left"
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    seconds, tokens = 0.0, 0
    for adapter in adapters:
        started = time.perf_counter()
        placement = {"device_map": device} if device != "cpu" else {}
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, **placement, **hub_kernels.load_kwargs())
        model = PeftModel.from_pretrained(model, str(adapter)).eval()
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.inference_mode():
            out = model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        _sync()
        seconds += time.perf_counter() - started
        tokens += sum(generated_lengths(out[:, batch["input_ids"].shape[1]:], eos_ids(model, tokenizer)))
        del model, out
        _free()
    return seconds, tokens


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny Llama on the CPU (smoke test)")
    hub_kernels.add_flag(parser)
    parser.add_argument("--peft-mixed", action="store_true",
                        help="(a) with peft's mixed-adapter batches instead of grouped LoRA matmuls")
    parser.add_argument("--static-cache", action="store_true",
                        help="also (a) with the engine's static KV cache (--engine.kv-cache static; on CUDA its decode "
                             "step compiled with CUDA graphs), beside the dynamic cache: rate, fraction of the bound, "
                             "rows whose text differs")
    parser.add_argument("--adapters", type=int, default=16)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--batch", type=int, default=256, help="(a)'s rows per generate (the competition's batch)")
    parser.add_argument("--reload-adapters", type=int, default=4, help="adapters (b) is timed on")
    parser.add_argument("--agreement-adapters", type=int, default=4,
                        help="adapters the cross-batch agreement runs use (0: skip them)")
    parser.add_argument("--agreement-batch", type=int, default=16, help="the other batch size agreement compares")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    hub_kernels.apply_flag(args)
    if args.tiny:
        args.adapters, args.prompts, args.new_tokens, args.batch = min(args.adapters, 3), min(args.prompts, 3), 4, 6
        args.rank, args.reload_adapters, args.agreement_adapters = 4, 2, min(args.agreement_adapters, 3)
        args.agreement_batch = 2
    import logging
    import warnings

    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("cortex").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    device = "cpu" if args.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no GPU visible: run with --tiny for the CPU smoke test")
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    shape, name = (TINY, "tiny Llama") if args.tiny else (LLAMA_31_8B, "Llama-3.1-8B shape")
    root = Path(tempfile.mkdtemp(prefix="cortex-gpu-validator-"))
    report: dict = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "CPU", "shape": name,
                    "adapters": args.adapters, "rank": args.rank, "prompts": args.prompts,
                    "new_tokens": args.new_tokens, "batch": args.batch, "static_cache": args.static_cache}
    try:
        started = time.perf_counter()
        prompts = chats(args.prompts, days=3 if args.tiny else 30)
        base, adapters, params = build(root, shape, prompts, args.adapters, args.rank, device, dtype)
        print(f"device: {report['device']}; base: {name} ({shape['num_hidden_layers']} layers, hidden "
              f"{shape['hidden_size']}, MLP {shape['intermediate_size']}, {shape['num_attention_heads']}/"
              f"{shape['num_key_value_heads']} heads), {params / 1e9:.2f}B parameters, random weights, "
              f"{str(dtype).split('.')[-1]}; built in {time.perf_counter() - started:.0f} s", flush=True)
        print(f"{len(adapters)} rank-{args.rank} LoRA adapters; {len(prompts)} prompts; {args.new_tokens} new tokens each")
        def save() -> None:  # after every part: a run cut short by its time limit keeps what it measured
            if args.json:
                Path(args.json).write_text(json.dumps(report, indent=1) + "\n")

        a_seconds, a_results, a_generating, _ = engine_side(base, adapters, prompts, args.new_tokens, args.batch,
                                                            device, grouped=not args.peft_mixed, rank=args.rank)
        a_tokens = sum(r.new_tokens for r in a_results.values())
        b_adapters = adapters[:max(1, args.reload_adapters)]
        b_seconds, b_tokens = reload_side(base, b_adapters, prompts, args.new_tokens, device, dtype)
        expected = args.new_tokens * len(prompts)
        report["tokens"] = {}
        for side, got, want in (("a", a_tokens, expected * len(adapters)), ("b", b_tokens, expected * len(b_adapters))):
            # min_new_tokens = max_new_tokens: every row must produce exactly --new-tokens; a shortfall is a
            # finding to report (a counting error or rows ending early), not a reason to lose the figures
            print(f"({side}) new tokens: expected {want}, produced {got}" + ("" if got == want else "  MISMATCH"))
            report["tokens"][side] = {"expected": want, "produced": got}
        a_rate, b_rate = a_tokens / a_seconds, b_tokens / b_seconds
        print(f"(a) validator engine, multi-LoRA batches of {args.batch} rows: {a_seconds:7.1f} s for {len(adapters)} "
              f"adapters (one base load included)  {a_rate:9.1f} new tokens/s")
        print(f"(b) reload per adapter, its prompts in one batch:  {b_seconds:7.1f} s for {len(b_adapters)} adapters "
              f"(a load each)  {b_rate:9.1f} new tokens/s")
        report.update(a_seconds=a_seconds, a_tokens_per_s=a_rate, b_seconds=b_seconds, b_tokens_per_s=b_rate,
                      ratio=a_rate / b_rate)
        rows_per_batch = min(args.batch, len(prompts) * len(adapters))
        steps = -(-len(prompts) * len(adapters) // rows_per_batch) * args.new_tokens
        rate = copy_rate(device)
        prompt_tokens = sum(len(t) for t in _prompt_lengths(base, prompts)) / len(prompts)
        bound = decode_bound(params, shape, rows_per_batch, int(prompt_tokens), args.new_tokens,
                             torch.tensor([], dtype=dtype).element_size(),
                             sum(f.stat().st_size for a in adapters for f in a.glob("*.safetensors")), rate)
        step_seconds = a_generating / steps  # prefill included: an upper bound on the decode step's time
        report.update(copy_rate_gb_s=rate / 1e9, decode_step_ms=step_seconds * 1e3, bound_step_ms=bound * 1e3,
                      fraction_of_bound=bound / step_seconds)
        print(f"(a) decode step of {rows_per_batch} rows: {step_seconds * 1e3:.1f} ms (generation time / steps, prefill "
              f"included); bandwidth bound {bound * 1e3:.1f} ms at {rate / 1e9:.0f} GB/s measured copy rate: "
              f"{bound / step_seconds:.1%} of the bound")
        save()
        if args.static_cache:
            report["static"] = static_side(base, adapters, prompts, args, device, a_results, steps, bound, b_rate)
            save()
        if args.agreement_adapters:
            report["agreement"] = agreement(base, adapters[:args.agreement_adapters], prompts, args.new_tokens,
                                            args.batch, args.agreement_batch, device, args.rank)
            for what, fig in report["agreement"].items():
                print(f"agreement, {what}: {fig['rows_differing']} of {fig['rows']} rows differ "
                      f"({fig['fraction_differing']:.1%}); largest change of a model's mean reward "
                      f"{fig['largest_score_change']:.4f}")
        if device == "cuda":
            report["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
            print(f"peak GPU memory {report['peak_gib']:.1f} GiB; total {time.perf_counter() - started:.0f} s")
        print(f"ratio={report['ratio']:.2f}")
        save()
        return report
    finally:
        shutil.rmtree(root, ignore_errors=True)


def static_side(base: Path, adapters: list[Path], prompts, args, device: str, dynamic: dict, steps: int,
                bound: float, b_rate: float) -> dict:
    """(a) again with the static cache (compiled on CUDA), against (a)'s dynamic-cache answers to the same rows.
    A failure is a finding to report, not a reason to lose the other figures."""
    try:
        seconds, results, generating, warmup = engine_side(base, adapters, prompts, args.new_tokens, args.batch,
                                                           device, grouped=not args.peft_mixed, rank=args.rank,
                                                           kv_cache="static")
    except Exception as exc:  # noqa: BLE001 - report it and keep the rest of the run
        print(f"(a, static cache) FAILED: {type(exc).__name__}: {str(exc)[:300]}")
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    tokens = sum(r.new_tokens for r in results.values())
    step, timed = generating / steps, seconds - warmup  # the warm-up compiles once per process (not per group)
    fig = {"seconds": timed, "warmup_seconds": warmup, "tokens": tokens, "tokens_per_s": tokens / timed,
           "ratio": tokens / timed / b_rate, "decode_step_ms": step * 1e3, "fraction_of_bound": bound / step,
           "compiled": device == "cuda", "against_dynamic": differing(dynamic, results)}
    same = fig["against_dynamic"]
    print(f"(a, static cache{', decode step compiled (CUDA graphs)' if fig['compiled'] else ''}): {timed:7.1f} s "
          f"(one base load included; {warmup:.1f} s of warm-up before it)  {fig['tokens_per_s']:9.1f} new tokens/s, "
          f"ratio {fig['ratio']:.2f}; decode step {step * 1e3:.1f} ms: {bound / step:.1%} of the bound; new tokens "
          f"{tokens}; {same['rows_differing']} of {same['rows']} rows differ from the dynamic cache's")
    return fig


def _prompt_lengths(base: Path, prompts) -> list[list[int]]:
    from transformers import AutoTokenizer

    from cortex.eval.prompts import prompt_batch

    return prompt_batch(AutoTokenizer.from_pretrained(base), prompts)


if __name__ == "__main__":
    main()
