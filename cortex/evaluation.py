"""Generation and scoring shared by the miner (held-out check), the validator (rounds) and the
averager (the merge gate), so that all three judge a model the same way.

The base model is loaded once; each adapter's low-rank layers are injected into
it (``peft``), folded into the weights for the whole prompt set (left-padded batches, greedy
decoding; a DoRA layer left unfolded recomputes a weight norm at every token), then the base's
own weights are put back bit for bit and the layers taken out again (``unload``), rather than
loading a whole model per adapter as the peer subnets do. A model that runs over its time budget, crashes or runs out
of memory gets no score and a reason, and the next one starts on a clean state.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from cortex.reward import RewardConfig, score

log = logging.getLogger(__name__)


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
        return sum(self.rewards) / len(self.rewards) if self.rewards else 0.0

    @property
    def parse_rate(self) -> float:
        return sum(p["parse_error"] is None for p in self.parts) / len(self.parts) if self.parts else 0.0


class Generator:
    """A base model and its tokenizer, loaded once, with adapters swapped in and out."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *,
                 max_new_tokens: int = 384, batch_size: int = 8):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self._peft = None  # the PeftModel wrapper while an adapter is active
        self._saved: list[tuple[torch.nn.Module, dict[str, torch.Tensor]]] = []  # base weights to put back

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs) -> Generator:
        """Load a base from a local Hugging Face directory (never with remote code)."""
        model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=False, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        return cls(model, tokenizer, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # --- adapters ----------------------------------------------------------------------

    def _activate(self, adapter: Path) -> torch.nn.Module:
        from peft import PeftConfig, PeftModel

        config = PeftConfig.from_pretrained(str(adapter))
        config.inference_mode = True
        self._peft = PeftModel(self.model, config)  # injects the layers: from here on, _release undoes it
        loaded = self._peft.load_adapter(str(adapter), adapter_name="default", is_trainable=False)
        if loaded.missing_keys:  # peft only warns; an adapter without its weights is not this adapter
            raise ValueError(f"adapter is missing {len(loaded.missing_keys)} weights, e.g. {loaded.missing_keys[0]}")
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
        """Take the adapter's layers out again: the base is exactly as it was loaded."""
        with torch.no_grad():
            for base, params in self._saved:
                for name, value in params.items():
                    getattr(base, name).copy_(value)
        self._saved.clear()
        if self._peft is not None:
            self.model = self._peft.unload()
            self._peft = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # --- generation ----------------------------------------------------------------------

    def prompt_texts(self, prompts: Sequence[Sequence[Mapping[str, str]]]) -> list[str]:
        return [self.tokenizer.apply_chat_template([dict(m) for m in p], tokenize=False, add_generation_prompt=True)
                for p in prompts]

    @torch.inference_mode()
    def _generate(self, model: torch.nn.Module, prompts: Sequence, deadline: float | None) -> tuple[list[str], int]:
        texts, out, new_tokens = self.prompt_texts(prompts), [], 0
        for start in range(0, len(texts), self.batch_size):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise BudgetExceeded(f"answered {len(out)} of {len(texts)} prompts in the time budget")
            batch = self.tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                                   add_special_tokens=False).to(self.device)
            generated = model.generate(
                **batch, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1,
                pad_token_id=self.tokenizer.pad_token_id, max_time=remaining,
            )[:, batch["input_ids"].shape[1]:]
            new_tokens += int((generated != self.tokenizer.pad_token_id).sum())
            out.extend(self.tokenizer.batch_decode(generated, skip_special_tokens=True))
        if deadline is not None and time.monotonic() > deadline:
            raise BudgetExceeded(f"ran past the time budget on {len(texts)} prompts")
        return out, new_tokens

    def generate(self, prompts: Sequence, adapter: Path | None = None, *,
                 deadline: float | None = None) -> tuple[list[str], int]:
        """Greedy completions for every prompt, with ``adapter`` active (or the bare base)."""
        if adapter is None:
            return self._generate(self.model, prompts, deadline)
        try:
            return self._generate(self._activate(Path(adapter)), prompts, deadline)
        finally:
            self._release()


def score_completions(completions: Sequence[str], rows: Sequence[Mapping], config: RewardConfig) -> tuple[list[float], list[dict]]:
    rewards, parts = [], []
    for completion, row in zip(completions, rows):
        b = score(completion, row, config)
        rewards.append(b.total)
        parts.append({"total": b.total, "accuracy": b.accuracy, "depth": b.depth, "penalties": b.penalties,
                      "parse_error": b.parse_error, "answer": b.answer})
    return rewards, parts


def evaluate(generator: Generator, rows: Sequence[Mapping], *, key: str, adapter: Path | None = None,
             config: RewardConfig = RewardConfig(), time_budget: float | None = None) -> ModelScore:
    """Answer every row's ``prompt`` with one model and score the answers; never raises for the model."""
    started = time.monotonic()
    deadline = None if time_budget is None else started + time_budget
    try:
        completions, new_tokens = generator.generate([r["prompt"] for r in rows], adapter, deadline=deadline)
    except BudgetExceeded as exc:
        return ModelScore(key, None, seconds=time.monotonic() - started, reason=f"time_budget: {exc}")
    except torch.cuda.OutOfMemoryError:
        return ModelScore(key, None, seconds=time.monotonic() - started, reason="out_of_memory")
    except Exception as exc:  # noqa: BLE001 - an untrusted model must not stop the round
        log.warning("%s: generation failed: %s", key, exc)
        return ModelScore(key, None, seconds=time.monotonic() - started,
                          reason=f"generation_failed: {type(exc).__name__}: {str(exc)[:200]}")
    rewards, parts = score_completions(completions, rows, config)
    return ModelScore(key, rewards, completions, parts, time.monotonic() - started, new_tokens)
