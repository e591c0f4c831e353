"""Generation and scoring shared by the miner (held-out check), the validator (rounds) and the
averager (the merge gate), so that all three judge a model the same way.

The base model is loaded once (``cortex.eval.base``) and every prompt is built by
``cortex.eval.prompts``. Adapters reach the base in one of two ways, both greedy over left-padded
batches:

- **folded** (``Generator.generate``, any adapter, the only way for DoRA): one adapter's low-rank
  layers are injected (``peft``), folded into the weights for the whole prompt set (a DoRA layer
  left unfolded recomputes a weight norm at every token), then the base's own weights are put
  back bit for bit and the layers taken out again (``unload``);
- **mixed** (``Generator.generate_mixed``, LoRA only): several adapters are loaded side by side
  and one batch holds rows of many adapters (and of the bare base), each row routed through its
  own adapter: by grouped LoRA matmuls (``cortex.eval.grouped_lora``) where every layer allows
  it, else by peft's mixed-adapter batches (``generate(..., adapter_names=[...])``). Neither
  takes DoRA.

A model that runs over its time budget, crashes or runs out of memory gets no score and a reason,
and the next one starts on a clean state.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from cortex.eval.prompts import prompt_batch
from cortex.reward import RewardConfig, score

log = logging.getLogger(__name__)
BASE = "__base__"  # peft's name for "no adapter" in a mixed batch


class BudgetExceeded(Exception):
    """A model used up its time budget before answering every prompt."""


@dataclass(frozen=True)
class ModelScore:
    """One model's answers to a prompt set and their rewards; ``reason`` says why there are none."""

    key: str
    rewards: list[float] | None
    completions: list[str] | None = None
    parts: list[dict] = field(default_factory=list)  # per prompt: accuracy, depth, penalties, parse_error
    seconds: float = 0.0
    new_tokens: int = 0
    reason: str | None = None

    @property
    def mean_reward(self) -> float:
        known = [r for r in self.rewards or () if r is not None]  # None: a live question, not resolved yet
        return sum(known) / len(known) if known else 0.0

    @property
    def parse_rate(self) -> float:
        return sum(p["parse_error"] is None for p in self.parts) / len(self.parts) if self.parts else 0.0


def failure(key: str, exc: BaseException, seconds: float = 0.0) -> ModelScore:
    """The score of a model whose generation failed: no rewards, and why."""
    if isinstance(exc, BudgetExceeded):
        return ModelScore(key, None, seconds=seconds, reason=f"time_budget: {exc}")
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return ModelScore(key, None, seconds=seconds, reason="out_of_memory")
    return ModelScore(key, None, seconds=seconds, reason=f"generation_failed: {type(exc).__name__}: {str(exc)[:200]}")


def eos_ids(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    """The token ids that end a row in ``generate``: the model's generation config, else the tokenizer's EOS."""
    config = getattr(model, "generation_config", None)
    eos = getattr(config, "eos_token_id", None)
    ids = frozenset(i for i in (eos if isinstance(eos, (list, tuple)) else [eos]) if i is not None)
    return ids or frozenset(i for i in [tokenizer.eos_token_id] if i is not None)


def generated_lengths(generated: torch.Tensor, eos: frozenset[int] | set[int]) -> list[int]:
    """New tokens per row of ``generate``'s output with the prompt cut off: up to and including the row's
    first EOS, the whole row where it has none. Never by comparing with the pad id: a model may emit the
    pad id as an ordinary token (it is just another logit), and ``generate`` pads only after an EOS."""
    rows, width = generated.shape
    if not eos or width == 0:
        return [width] * rows
    is_eos = torch.isin(generated, torch.tensor(sorted(eos), device=generated.device))
    first = is_eos.int().argmax(dim=1).tolist()
    return [f + 1 if ended else width for f, ended in zip(first, is_eos.any(dim=1).tolist())]


class Generator:
    """A base model and its tokenizer, loaded once, with adapters swapped in and out."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *,
                 max_new_tokens: int = 384, batch_size: int = 8, kv_cache: str = "dynamic", compile: str = "auto"):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self._peft = None  # the PeftModel wrapper while adapters are injected
        self._saved: list[tuple[torch.nn.Module, dict[str, torch.Tensor]]] = []  # base weights to put back
        self._names: dict[str, str] = {}  # model key → peft adapter name, while mixed adapters are loaded
        self.grouped = True  # mixed batches through grouped LoRA matmuls where possible (False: peft's loop)
        self.pad_rank = 0  # grouped LoRA stacks padded to this rank (the competition's max_rank): fixed shapes
        self.kv_cache = kv_cache  # "dynamic", or "static": transformers' StaticCache, allocated before decoding
        self.compile = compile  # the grouped path's decode step with a static cache (``decode_kwargs``)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto", dtype: torch.dtype | str | None = None,
             **kwargs) -> Generator:
        """A base from a local Hugging Face folder, placed by ``cortex.eval.base``'s policy."""
        from cortex.eval.base import load_base

        model, tokenizer = load_base(Path(path), device=device, dtype=dtype)
        return cls(model, tokenizer, **kwargs)

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    # --- folded adapters ------------------------------------------------------------------

    def _inject(self, adapter: Path, name: str) -> None:
        """Load one adapter's layers into the base (wrapping it in peft on the first)."""
        from peft import PeftConfig, PeftModelForCausalLM

        if self._peft is None:
            config = PeftConfig.from_pretrained(str(adapter))
            config.inference_mode = True
            # from here on, _release undoes it
            self._peft = PeftModelForCausalLM(self.model, config, adapter_name=name)
        loaded = self._peft.load_adapter(str(adapter), adapter_name=name, is_trainable=False)
        if loaded.missing_keys:  # peft only warns; an adapter without its weights is not this adapter
            raise ValueError(f"adapter is missing {len(loaded.missing_keys)} weights, e.g. {loaded.missing_keys[0]}")

    def _activate(self, adapter: Path) -> torch.nn.Module:
        self._inject(adapter, "default")
        self._fold()
        return self._peft.eval()

    def _fold(self) -> None:
        """Merge the active adapter into the base weights, keeping the originals (on the CPU) to restore."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        for module in self._peft.modules():
            if isinstance(module, BaseTunerLayer):
                base = module.get_base_layer()
                self._saved.append((base, {k: v.detach().to("cpu", copy=True) for k, v in base.named_parameters()}))
        self._peft.merge_adapter()

    def _release(self) -> None:
        """Take every adapter's layers out again: the base is exactly as it was loaded."""
        with torch.no_grad():
            for base, params in self._saved:
                for name, value in params.items():
                    getattr(base, name).copy_(value)
        self._saved.clear()
        self._names.clear()
        if self._peft is not None:
            self.model = self._peft.unload()
            self._peft = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # --- mixed adapters ---------------------------------------------------------------------

    def attach(self, adapters: Mapping[str, Path]) -> dict[str, BaseException]:
        """Load LoRA adapters side by side for mixed batches; returns the ones that failed to load."""
        if self._saved:
            raise RuntimeError("a folded adapter is still active")
        failed: dict[str, BaseException] = {}
        for key, path in adapters.items():
            name = f"cortex_{len(self._names) + len(failed):04d}"
            try:
                self._inject(Path(path), name)
                if getattr(self._peft.peft_config[name], "use_dora", False):
                    raise ValueError("DoRA adapters cannot share a mixed batch: evaluate them folded")
                self._names[key] = name
            except Exception as exc:  # noqa: BLE001 - an untrusted adapter must not stop the others
                failed[key] = exc
                self._drop(name)
        return failed

    def _drop(self, name: str) -> None:
        """Remove a half-loaded adapter (or the whole wrapper when it was the only one)."""
        if self._peft is None:
            return
        if not self._names:
            self._release()
        elif name in self._peft.peft_config:
            self._peft.delete_adapter(name)

    def detach(self) -> None:
        self._release()

    def generate_mixed(self, prompts: Sequence, keys: Sequence[str | None], *,
                       deadline: float | None = None) -> dict[str | None, tuple[list[str], int]]:
        """Greedy completions of every prompt for every key (``None``: the bare base) in mixed batches.

        Rows are (key, prompt) pairs in batches of at most ``batch_size`` (``mixed_batches``: a few
        keys x the same prompts each), each row through its own adapter: grouped matmuls
        (``cortex.eval.grouped_lora``) where every layer allows it, peft's mixed-adapter batches
        otherwise. Raises (BudgetExceeded, or any generation error) for the whole set."""
        from cortex.eval.grouped_lora import GroupedLora, mixed_batches, segments_of

        unknown = [k for k in keys if k is not None and k not in self._names]
        if unknown:
            raise KeyError(f"adapters not attached: {unknown}")
        ids = prompt_batch(self.tokenizer, prompts)
        names = [None if k is None else self._names[k] for k in keys]
        model = self._peft if self._peft is not None else self.model
        grouped = None
        if self._peft is not None and self.grouped:
            grouped = GroupedLora.build(self._peft, [n for n in names if n is not None], rank=self.pad_rank)
            log.debug("mixed batches: %s", "grouped LoRA" if grouped else "peft's adapter_names")
        answers: dict[tuple[int, int], tuple[str, int]] = {}  # (key index, prompt index) -> (text, new tokens)
        batches = mixed_batches(len(keys), len(ids), self.batch_size)
        with contextlib.ExitStack() as stack:
            # every batch has the same number of segments: one routing (hooks, slots) serves them all
            route = stack.enter_context(grouped.routing(len(segments_of(batches[0])))) if grouped and batches else None
            for batch in batches:
                batch_ids = [ids[i] for _, i in batch]
                if route is not None:
                    route([names[k] for k in segments_of(batch)])
                    done, tokens = self._run(model, batch_ids, deadline, rows=len(batch), compiled=True)
                else:
                    routes = [names[k] or BASE for k, _ in batch] if self._peft is not None else None
                    done, tokens = self._run(model, batch_ids, deadline, routes, rows=len(batch))
                for row, answer in zip(batch, zip(done, tokens)):
                    answers.setdefault(row, answer)  # a filler copy of a segment does not replace the real one
        return {key: ([answers[k, i][0] for i in range(len(ids))], sum(answers[k, i][1] for i in range(len(ids))))
                for k, key in enumerate(keys)}

    # --- generation ----------------------------------------------------------------------

    def prompt_ids(self, prompts: Sequence[Sequence[Mapping[str, str]]]) -> list[list[int]]:
        return prompt_batch(self.tokenizer, prompts)

    def decode_kwargs(self, compiled: bool = False) -> dict:
        """``generate``'s cache and compile arguments.

        With ``kv_cache="static"`` the KV cache is transformers' ``StaticCache`` (allocated once for
        prompt + ``max_new_tokens``; masked slots add exact zeros, so the tokens are those of the dynamic
        cache). Where the caller's forward pass may be traced (``compiled``: the grouped-LoRA path, whose
        hooks and slots keep their identity between batches), the decode step is compiled:
        ``compile="auto"`` means inductor with ``mode="reduce-overhead"`` (CUDA graphs) on CUDA and
        nothing elsewhere; ``"off"`` never; a backend name (``inductor``, ``eager``, ``aot_eager``)
        on any device. Everywhere else transformers' own auto-compile is turned off: peft's
        ``adapter_names`` hooks and folded weights change between calls in ways a captured graph would miss."""
        if self.kv_cache == "dynamic":
            return {}
        backend = ("inductor" if self.device.type == "cuda" else "off") if self.compile == "auto" else self.compile
        if not compiled or backend == "off":
            return {"cache_implementation": "static", "disable_compile": True}
        from transformers import CompileConfig

        config = CompileConfig(backend=backend, mode="reduce-overhead" if backend == "inductor" else "default")
        config._compile_all_devices = True  # transformers' own switch: compile on whatever device the model is on
        return {"cache_implementation": "static", "compile_config": config}

    @torch.inference_mode()
    def _run(self, model: torch.nn.Module, ids: Sequence[list[int]], deadline: float | None,
             adapter_names: Sequence[str] | None = None, rows: int | None = None,
             compiled: bool = False) -> tuple[list[str], list[int]]:
        """Greedy completions of token-id prompts, ``rows`` (default ``batch_size``) at a time; new tokens per row.
        ``compiled``: the caller's forward may run as a compiled decode step (``decode_kwargs``)."""
        out, tokens = [], []
        step = rows or self.batch_size
        for start in range(0, len(ids), step):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise BudgetExceeded(f"answered {len(out)} of {len(ids)} prompts in the time budget")
            batch = self.tokenizer.pad({"input_ids": list(ids[start:start + step])}, padding=True,
                                       return_tensors="pt").to(self.device)
            extra = {} if adapter_names is None else {"adapter_names": list(adapter_names[start:start + step])}
            generated = model.generate(
                **batch, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1,
                pad_token_id=self.tokenizer.pad_token_id, max_time=remaining, **extra, **self.decode_kwargs(compiled),
            )[:, batch["input_ids"].shape[1]:]
            lengths = generated_lengths(generated, eos_ids(self.model, self.tokenizer))
            tokens.extend(lengths)
            out.extend(self.tokenizer.batch_decode([row[:n] for row, n in zip(generated, lengths)],
                                                   skip_special_tokens=True))
        if deadline is not None and time.monotonic() > deadline:
            raise BudgetExceeded(f"ran past the time budget on {len(ids)} prompts")
        return out, tokens

    def generate(self, prompts: Sequence, adapter: Path | None = None, *,
                 deadline: float | None = None) -> tuple[list[str], int]:
        """Greedy completions for every prompt, with ``adapter`` folded in (or the bare base)."""
        if adapter is None:
            texts, tokens = self._run(self.model, self.prompt_ids(prompts), deadline)
            return texts, sum(tokens)
        try:
            texts, tokens = self._run(self._activate(Path(adapter)), self.prompt_ids(prompts), deadline)
            return texts, sum(tokens)
        finally:
            self._release()


def score_completions(completions: Sequence[str], rows: Sequence[Mapping], config: RewardConfig) -> tuple[list[float], list[dict]]:
    rewards, parts = [], []
    for completion, row in zip(completions, rows):
        if row.get("outcome_return") is None:  # a live question: scored later, once its outcome resolves
            rewards.append(None)
            parts.append({"total": None, "parse_error": None, "answer": None, "pending": True})
            continue
        b = score(completion, row, config)
        rewards.append(b.total)
        parts.append({"total": b.total, "accuracy": b.accuracy, "depth": b.depth, "penalties": b.penalties,
                      "parse_error": b.parse_error, "answer": b.answer})
    return rewards, parts


def scored(key: str, completions: Sequence[str], new_tokens: int, rows: Sequence[Mapping], config: RewardConfig,
           seconds: float) -> ModelScore:
    rewards, parts = score_completions(completions, rows, config)
    return ModelScore(key, rewards, list(completions), parts, seconds, new_tokens)


def evaluate(generator: Generator, rows: Sequence[Mapping], *, key: str, adapter: Path | None = None,
             config: RewardConfig = RewardConfig(), time_budget: float | None = None) -> ModelScore:
    """Answer every row's ``prompt`` with one model (folded) and score the answers; never raises for the model."""
    started = time.monotonic()
    deadline = None if time_budget is None else started + time_budget
    try:
        completions, new_tokens = generator.generate([r["prompt"] for r in rows], adapter, deadline=deadline)
    except Exception as exc:  # noqa: BLE001 - an untrusted model must not stop the round
        if not isinstance(exc, BudgetExceeded):
            log.warning("%s: generation failed: %s", key, exc)
        return failure(key, exc, time.monotonic() - started)
    return scored(key, completions, new_tokens, rows, config, time.monotonic() - started)
