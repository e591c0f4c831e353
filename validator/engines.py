"""Evaluation engines: one base loaded once, every adapter answering the same prompts (issue 5, step 6).

- ``transformers``: ``cortex.evaluation.Generator`` on CPU or GPU. Each adapter's low-rank layers
  are injected into the one base (``peft``), used for the whole prompt set in left-padded greedy
  batches and taken out again. A model that overruns its time budget, crashes or runs out of
  memory is a reason, never an exception, and the next one starts on the clean base.
- ``vllm`` (GPU): the base once, adapters as ``LoRARequest``s, up to ``max_loras`` of them sharing
  one generation pass (every prompt × every adapter in one ``LLM.generate``). vLLM has no DoRA, so
  DoRA adapters go through a transformers copy of the base on the same device, loaded when first
  needed. Chosen with ``--engine vllm``; ``require_engine`` stops with a clear message on a machine
  without a GPU or without vllm, before any work.

Both yield one ``cortex.evaluation.ModelScore`` per job as soon as it is known, so the round can
persist its progress after every model.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cortex.errors import CortexError
from cortex.evaluation import ModelScore
from cortex.reward import RewardConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    key: str  # "base" or the model key (repo@revision)
    adapter: Path | None  # None: the bare base


class Engine(Protocol):
    name: str

    def evaluate(self, rows: Sequence[Mapping], jobs: Sequence[Job], *, reward: RewardConfig,
                 time_budget: float) -> Iterator[ModelScore]: ...


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def require_engine(name: str) -> None:
    """Stop before any work when the chosen engine cannot run on this machine."""
    if name != "vllm":
        return
    import torch

    if not torch.cuda.is_available():
        raise CortexError("--engine vllm needs an NVIDIA GPU and this machine has none (torch.cuda.is_available() "
                          "is False): use --engine transformers here")
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise CortexError("--engine vllm needs the vllm package: pip install -e '.[gpu]', "
                          "or use --engine transformers") from None


class TransformersEngine:
    name = "transformers"

    def __init__(self, base_dir: Path, *, device: str = "cpu", max_new_tokens: int, batch_size: int):
        from cortex.evaluation import Generator
        from cortex.model.loading import load_base

        model, tokenizer = load_base(Path(base_dir), device=resolve_device(device))
        self.generator = Generator(model, tokenizer, max_new_tokens=max_new_tokens, batch_size=batch_size)

    def evaluate(self, rows, jobs, *, reward, time_budget):
        from cortex.evaluation import evaluate

        for job in jobs:
            yield evaluate(self.generator, rows, key=job.key, adapter=job.adapter, config=reward,
                           time_budget=time_budget)


def _is_dora(adapter: Path) -> bool:
    return bool(json.loads((adapter / "adapter_config.json").read_text()).get("use_dora"))


class VLLMEngine:
    """Multi-LoRA generation with vLLM. Written against vLLM's documented offline API; see docs/validator.md."""

    name = "vllm"

    def __init__(self, base_dir: Path, *, max_new_tokens: int, batch_size: int, max_loras: int = 8,
                 max_lora_rank: int = 64, gpu_memory_utilization: float = 0.6):
        require_engine("vllm")
        from vllm import LLM, SamplingParams

        self.base_dir, self.batch_size, self.max_loras = Path(base_dir), batch_size, max_loras
        self.max_new_tokens = max_new_tokens
        self.llm = LLM(model=str(base_dir), tokenizer=str(base_dir), trust_remote_code=False, enable_lora=True,
                       max_loras=max_loras, max_lora_rank=max_lora_rank, seed=0,
                       gpu_memory_utilization=gpu_memory_utilization)
        self.params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
        self.tokenizer = self.llm.get_tokenizer()
        self._fallback: TransformersEngine | None = None
        self._next_id = 1

    def _texts(self, rows) -> list[str]:
        return [self.tokenizer.apply_chat_template([dict(m) for m in r["prompt"]], tokenize=False,
                                                   add_generation_prompt=True) for r in rows]

    def _transformers(self) -> TransformersEngine:
        if self._fallback is None:
            self._fallback = TransformersEngine(self.base_dir, device="cuda", max_new_tokens=self.max_new_tokens,
                                                batch_size=self.batch_size)
        return self._fallback

    def evaluate(self, rows, jobs, *, reward, time_budget):
        dora = [j for j in jobs if j.adapter is not None and _is_dora(j.adapter)]
        lora = [j for j in jobs if j not in dora]
        for start in range(0, len(lora), self.max_loras):
            yield from self._shared(rows, lora[start:start + self.max_loras], reward, time_budget)
        if dora:
            log.info("vllm has no DoRA: %d DoRA adapters go through the transformers engine", len(dora))
            yield from self._transformers().evaluate(rows, dora, reward=reward, time_budget=time_budget)

    def _shared(self, rows, chunk: Sequence[Job], reward, time_budget) -> Iterator[ModelScore]:
        """One generation pass for every prompt of every job in ``chunk``."""
        from vllm.lora.request import LoRARequest

        from cortex.evaluation import score_completions

        texts, requests = self._texts(rows), []
        for job in chunk:
            requests.append(None if job.adapter is None else LoRARequest(job.key, self._next_id, str(job.adapter)))
            self._next_id += 1
        started = time.monotonic()
        try:
            outputs = self.llm.generate([t for _ in chunk for t in texts], self.params,
                                        lora_request=[r for r in requests for _ in texts], use_tqdm=False)
        except Exception as exc:  # noqa: BLE001 - one bad adapter must not sink the batch
            if len(chunk) == 1:
                yield ModelScore(chunk[0].key, None, reason=f"generation_failed: {type(exc).__name__}: {str(exc)[:200]}")
                return
            log.warning("shared vllm batch failed (%s); evaluating its %d models one by one", exc, len(chunk))
            for job in chunk:
                yield from self._shared(rows, [job], reward, time_budget)
            return
        seconds = time.monotonic() - started
        for i, job in enumerate(chunk):
            mine = outputs[i * len(texts):(i + 1) * len(texts)]
            if seconds > time_budget * len(chunk):
                yield ModelScore(job.key, None, seconds=seconds / len(chunk),
                                 reason=f"time_budget: the shared batch took {seconds:.0f}s for {len(chunk)} models")
                continue
            completions = [o.outputs[0].text for o in mine]
            rewards, parts = score_completions(completions, rows, reward)
            tokens = sum(len(o.outputs[0].token_ids) for o in mine)
            yield ModelScore(job.key, rewards, completions, parts, seconds / len(chunk), tokens)


def build_engine(name: str, base_dir: Path, *, device: str, max_new_tokens: int, batch_size: int,
                 max_loras: int = 8, max_rank: int = 64) -> Engine:
    if name == "vllm":
        rank = next((r for r in (8, 16, 32, 64, 128, 256, 320, 512) if r >= max_rank), 512)  # vLLM's sizes
        return VLLMEngine(base_dir, max_new_tokens=max_new_tokens, batch_size=batch_size, max_loras=max_loras,
                          max_lora_rank=rank)
    return TransformersEngine(base_dir, device=device, max_new_tokens=max_new_tokens, batch_size=batch_size)
