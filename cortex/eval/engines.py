"""Evaluation engines: one base loaded once, every model of a competition answering the same prompts.

One engine per competition per round, so the base and every model are judged with the same numerics
(DESIGN §9). Which one follows from the adapter types the competition allows (``choose_engine``):

- ``transformers`` (CPU or GPU; any competition that allows DoRA): ``Generator``'s folded path,
  one adapter at a time, its layers folded into the one base and taken out again.
- ``multi-lora`` (CPU or GPU; LoRA-only competitions): up to ``max_loras`` LoRA adapters loaded
  side by side on the one base, every (adapter, prompt) row in peft's mixed-adapter batches.
- ``vllm`` (GPU, ``--engine vllm``, LoRA-only competitions): the base once, adapters as
  ``LoRARequest`` s with ids stable across rounds, prompts given as token ids from the one prompt
  builder (``cortex.eval.prompts``), tensor parallel over the visible GPUs. vLLM has no DoRA, so
  ``--engine vllm`` with a competition that allows DoRA is refused before any work.

The batched engines give each group of models a shared time budget (the per-model budget times the
group's size); a group that overruns or fails is evaluated again one model at a time with each
model's own budget, so one bad or slow adapter never sinks the others. Every engine yields one
``ModelScore`` per job as soon as it is known, so the round can persist its progress after each.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cortex.errors import CortexError
from cortex.eval.generate import BudgetExceeded, Generator, ModelScore, evaluate, failure, scored
from cortex.eval.options import EngineOptions
from cortex.reward import RewardConfig

log = logging.getLogger(__name__)
ENGINES = ("transformers", "vllm")  # what --engine chooses among
VLLM_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts


@dataclass(frozen=True)
class Job:
    key: str  # "base" or the model key (repo@revision)
    adapter: Path | None  # None: the bare base


class Engine(Protocol):
    name: str

    def evaluate(self, rows: Sequence[Mapping], jobs: Sequence[Job], *, reward: RewardConfig,
                 time_budget: float) -> Iterator[ModelScore]: ...


def choose_engine(requested: str, adapter_types: Iterable[str], competition: str = "") -> str:
    """The one engine that serves every adapter type a competition allows, or a clear refusal."""
    if requested not in ENGINES:
        raise CortexError(f"--engine must be one of {', '.join(ENGINES)}, got {requested!r}")
    types = set(adapter_types)
    if requested == "vllm":
        if "dora" in types:
            raise CortexError(
                f"--engine vllm cannot evaluate competition {competition or '?'}: it allows DoRA adapters and vLLM "
                "has no DoRA; one engine judges every model of a competition, so use --engine transformers "
                "(or score only LoRA-only competitions with vllm)")
        return "vllm"
    return "transformers" if "dora" in types else "multi-lora"


def require_engine(name: str, competitions: Iterable = (), options: EngineOptions | None = None) -> None:
    """Stop before any work when the chosen engine cannot run here or cannot serve a competition."""
    if name == "vllm":
        import torch

        if not torch.cuda.is_available():
            raise CortexError("--engine vllm needs an NVIDIA GPU and this machine has none (torch.cuda.is_available() "
                              "is False): use --engine transformers here")
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise CortexError("--engine vllm needs the vllm package: pip install -e '.[gpu]', "
                              "or use --engine transformers") from None
        if options is not None and options.tensor_parallel_size > torch.cuda.device_count():
            raise CortexError(f"--vllm.tensor-parallel-size {options.tensor_parallel_size} needs that many GPUs; "
                              f"this machine has {torch.cuda.device_count()}")
    for comp in competitions:
        choose_engine(name, comp.adapters.types, comp.id)


def lora_id(key: str) -> int:
    """A positive 31-bit id derived from the model key: the same adapter keeps its id across rounds."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % (2**31 - 1) + 1


class TransformersEngine:
    """Any adapter, one at a time, folded into the one base (``Generator.generate``)."""

    name = "transformers"

    def __init__(self, base_dir: Path | None = None, *, max_new_tokens: int, batch_size: int,
                 options: EngineOptions = EngineOptions(), generator: Generator | None = None):
        self.generator = generator or Generator.load(base_dir, device=options.device, dtype=options.dtype,
                                                     max_new_tokens=max_new_tokens, batch_size=batch_size,
                                                     kv_cache=options.kv_cache, compile=options.compile)

    def evaluate(self, rows, jobs, *, reward, time_budget):
        for job in jobs:
            yield evaluate(self.generator, rows, key=job.key, adapter=job.adapter, config=reward,
                           time_budget=time_budget)


class _GroupedEngine:
    """Groups of up to ``max_loras`` models in one batched pass; a failed group goes one by one."""

    max_loras: int

    def evaluate(self, rows, jobs, *, reward, time_budget):
        jobs = list(jobs)
        for start in range(0, len(jobs), self.max_loras):
            yield from self._group(rows, jobs[start:start + self.max_loras], reward, time_budget)

    def _group(self, rows, group: Sequence[Job], reward, time_budget) -> Iterator[ModelScore]:
        started = time.monotonic()
        answers, failed, error, live = None, {}, None, list(group)
        try:
            failed = self._attach({j.key: j.adapter for j in group if j.adapter is not None})
            live = [j for j in group if j.key not in failed]
            if live:
                answers = self._generate(rows, [None if j.adapter is None else j.key for j in live],
                                         started + time_budget * len(live))
        except Exception as exc:  # noqa: BLE001 - untrusted models must not stop the round
            error = exc
        finally:
            self._detach()
        seconds = time.monotonic() - started
        for key, exc in failed.items():
            log.warning("%s: adapter failed to load: %s", key, exc)
            yield failure(key, exc)
        if error is not None and len(live) == 1:
            yield failure(live[0].key, error, seconds)
            return
        if error is not None:
            log.warning("a batch of %d models failed (%s: %s); evaluating them one by one", len(live),
                        type(error).__name__, error)
            for job in live:
                yield from self._group(rows, [job], reward, time_budget)
            return
        for job in live:
            completions, tokens = answers[None if job.adapter is None else job.key]
            yield scored(job.key, completions, tokens, rows, reward, seconds / len(live))

    def _attach(self, adapters: Mapping[str, Path]) -> dict[str, BaseException]: ...

    def _generate(self, rows, keys: Sequence[str | None], deadline: float) -> dict[str | None, tuple[list[str], int]]: ...

    def _detach(self) -> None: ...


class MultiLoraEngine(_GroupedEngine):
    """LoRA adapters side by side on the one base, rows of many adapters in each batch (peft)."""

    name = "multi-lora"

    def __init__(self, base_dir: Path | None = None, *, max_new_tokens: int, batch_size: int, max_rank: int = 0,
                 options: EngineOptions = EngineOptions(), generator: Generator | None = None):
        self.max_loras = options.max_loras
        self.generator = generator or Generator.load(base_dir, device=options.device, dtype=options.dtype,
                                                     max_new_tokens=max_new_tokens, batch_size=batch_size,
                                                     kv_cache=options.kv_cache, compile=options.compile)
        self.generator.pad_rank = max_rank  # fixed stack widths: a row's answer does not depend on its co-tenants

    def _attach(self, adapters):
        return self.generator.attach(adapters)

    def _generate(self, rows, keys, deadline):
        return self.generator.generate_mixed([r["prompt"] for r in rows], keys, deadline=deadline)

    def _detach(self):
        self.generator.detach()


class VLLMEngine(_GroupedEngine):
    """Multi-LoRA generation with vLLM, written against its documented offline API (docs/validator.md)."""

    name = "vllm"

    def __init__(self, base_dir: Path, *, max_new_tokens: int, batch_size: int, max_rank: int = 64,
                 options: EngineOptions = EngineOptions()):
        require_engine("vllm")
        from transformers import AutoTokenizer
        from vllm import LLM, SamplingParams

        self.max_loras, self.batch_size = options.max_loras, batch_size
        rank = next((r for r in VLLM_RANKS if r >= max_rank), VLLM_RANKS[-1])
        self.llm = LLM(model=str(base_dir), tokenizer=str(base_dir), trust_remote_code=False, enable_lora=True,
                       max_loras=options.max_loras, max_lora_rank=rank, seed=0, dtype="auto",
                       tensor_parallel_size=options.tensor_parallel_size, max_model_len=options.max_model_len,
                       gpu_memory_utilization=options.gpu_memory_utilization)
        self.params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
        # the same tokenizer files and the same prompt builder as the transformers engines
        self.tokenizer = AutoTokenizer.from_pretrained(base_dir, trust_remote_code=False, local_files_only=True)
        self._paths: dict[str, Path] = {}

    def _attach(self, adapters):
        ids = [lora_id(k) for k in adapters]
        if len(set(ids)) != len(ids):  # a hash collision within one group: run these one by one
            raise ValueError("two adapters of one batch share a LoRA id")
        self._paths = dict(adapters)
        return {}

    def _detach(self):
        self._paths = {}

    def requests(self, rows) -> list[dict]:
        from cortex.eval.prompts import prompt_ids

        return [{"prompt_token_ids": prompt_ids(self.tokenizer, r["prompt"])} for r in rows]

    def _generate(self, rows, keys, deadline):
        from vllm.lora.request import LoRARequest

        prompts = self.requests(rows)
        # keywords: LoRARequest's field order is no contract between vLLM versions
        lora = {k: LoRARequest(lora_name=k, lora_int_id=lora_id(k), lora_path=str(self._paths[k]))
                for k in keys if k is not None}
        out: dict[str | None, tuple[list[str], int]] = {k: ([], 0) for k in keys}
        for start in range(0, len(prompts), self.batch_size):  # the budget is checked after every batch
            if time.monotonic() >= deadline:
                raise BudgetExceeded(f"answered {start} of {len(prompts)} prompts in the time budget")
            chunk = prompts[start:start + self.batch_size]
            results = self.llm.generate([p for _ in keys for p in chunk], self.params, use_tqdm=False,
                                        lora_request=[lora.get(k) for k in keys for _ in chunk])
            for i, key in enumerate(keys):
                texts, tokens = out[key]
                mine = results[i * len(chunk):(i + 1) * len(chunk)]
                out[key] = (texts + [o.outputs[0].text for o in mine],
                            tokens + sum(len(o.outputs[0].token_ids) for o in mine))
        if time.monotonic() > deadline:
            raise BudgetExceeded(f"ran past the time budget on {len(prompts)} prompts")
        return out


def build_engine(name: str, base_dir: Path, adapter_types: Iterable[str], *, max_new_tokens: int,
                 batch_size: int, max_rank: int = 64, options: EngineOptions = EngineOptions(),
                 competition: str = "") -> Engine:
    """The engine ``choose_engine`` picks for a competition's adapter types."""
    kind = choose_engine(name, adapter_types, competition)
    if kind == "vllm":
        return VLLMEngine(base_dir, max_new_tokens=max_new_tokens, batch_size=batch_size, max_rank=max_rank,
                          options=options)
    if kind == "multi-lora":
        return MultiLoraEngine(base_dir, max_new_tokens=max_new_tokens, batch_size=batch_size, max_rank=max_rank,
                               options=options)
    return TransformersEngine(base_dir, max_new_tokens=max_new_tokens, batch_size=batch_size, options=options)
