"""A stand-in for the ``vllm`` package, as thin as the API the project calls, for machines without a GPU.

vLLM cannot be installed here (it needs CUDA). This module replaces only what runs on the GPU (the
model's forward pass): everything the project's code builds for vLLM and reads back from it goes through
classes that check their arguments the way vLLM's own do, so that a drift between our calls and vLLM's
API fails the tests. Read from vLLM's source (vllm-project/vllm, main in 2025-2026):

- ``vllm/entrypoints/llm.py``: ``LLM(model, *, tokenizer=None, trust_remote_code=False, tensor_parallel_size=1,
  dtype="auto", seed=..., gpu_memory_utilization=0.9, **kwargs)`` with the rest as ``EngineArgs`` fields
  (``enable_lora``, ``max_loras``, ``max_lora_rank``, ``max_model_len``);
  ``LLM.generate(prompts, sampling_params=None, *, use_tqdm=True, lora_request=None, priority=None)`` returns
  one ``RequestOutput`` per prompt, in the prompts' order; a list of LoRA requests must be as long as the
  prompts.
- ``vllm/inputs``: ``TokensPrompt`` is a dict with ``prompt_token_ids: list[int]``.
- ``vllm/sampling_params.py``: ``SamplingParams`` (a msgspec Struct; fields ``temperature`` >= 0, 0 is
  greedy; ``max_tokens`` >= 1; ``seed``; ``min_tokens``; ``stop_token_ids``; ``skip_special_tokens`` ...).
- ``vllm/lora/request.py``: ``LoRARequest`` (a msgspec Struct: ``lora_name``, ``lora_int_id`` > 0,
  ``lora_path`` non-empty, ``base_model_name``, ``tensorizer_config_dict``). Its field order has been
  changed in a proposed revision (``lora_path`` before ``lora_int_id``), so the stand-in takes keywords
  only: a positional call that would bind the wrong fields in some vLLM fails here.
- ``vllm/lora`` (PEFTHelper, LoRAModel.from_local_checkpoint): reads ``adapter_config.json`` and
  ``adapter_model.safetensors`` from ``lora_path``; refuses a rank over ``max_lora_rank``, DoRA and a LoRA
  bias; ``max_lora_rank`` is one of 8, 16, 32, 64, 128, 256, 320, 512.
- ``vllm/outputs.py``: ``RequestOutput.outputs`` is a list of ``CompletionOutput(index, text, token_ids,
  cumulative_logprob, logprobs, finish_reason, ...)``; ``token_ids`` include the EOS that ended a row,
  ``text`` is their decoding without special tokens.

The "model" is a deterministic function of (adapter, prompt): a row of token ids from the base's own
vocabulary, some ending with EOS before ``max_tokens``, some holding the pad id as an ordinary token.
Every call is recorded in ``calls`` (one list per test, from :func:`install`).
"""

from __future__ import annotations

import hashlib
import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
ENGINE_ARGS = {"tokenizer", "trust_remote_code", "tensor_parallel_size", "dtype", "seed", "gpu_memory_utilization",
               "enable_lora", "max_loras", "max_lora_rank", "max_model_len", "enforce_eager", "max_cpu_loras",
               "quantization", "revision", "tokenizer_revision", "max_num_seqs", "enable_prefix_caching"}
SAMPLING_FIELDS = {"n", "presence_penalty", "frequency_penalty", "repetition_penalty", "temperature", "top_p", "top_k",
                   "min_p", "seed", "stop", "stop_token_ids", "ignore_eos", "max_tokens", "min_tokens", "logprobs",
                   "prompt_logprobs", "detokenize", "skip_special_tokens", "spaces_between_special_tokens",
                   "include_stop_str_in_output", "logit_bias", "allowed_token_ids", "bad_words"}


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise TypeError(message)


class SamplingParams:
    def __init__(self, **kwargs):  # keywords only: vLLM's field order is no contract
        unknown = set(kwargs) - SAMPLING_FIELDS
        _check(not unknown, f"SamplingParams got unknown fields {sorted(unknown)}")
        self.temperature = kwargs.get("temperature", 1.0)
        self.max_tokens = kwargs.get("max_tokens", 16)
        self.seed = kwargs.get("seed")
        self.min_tokens = kwargs.get("min_tokens", 0)
        self.skip_special_tokens = kwargs.get("skip_special_tokens", True)
        _check(isinstance(self.temperature, (int, float)) and self.temperature >= 0, "temperature must be >= 0")
        _check(self.max_tokens is None or (isinstance(self.max_tokens, int) and self.max_tokens >= 1),
               f"max_tokens must be an int >= 1, got {self.max_tokens!r}")
        _check(self.seed is None or isinstance(self.seed, int), "seed must be an int")
        self.kwargs = kwargs


class LoRARequest:
    def __init__(self, *, lora_name: str, lora_int_id: int, lora_path: str, base_model_name: str | None = None):
        _check(isinstance(lora_name, str) and lora_name, "lora_name must be a non-empty str")
        _check(isinstance(lora_int_id, int), "lora_int_id must be an int")
        if lora_int_id < 1:
            raise ValueError(f"id must be > 0, got {lora_int_id}")
        _check(isinstance(lora_path, str), f"lora_path must be a str, got {type(lora_path).__name__}")
        assert lora_path, "lora_path cannot be empty"
        self.lora_name, self.lora_int_id, self.lora_path = lora_name, lora_int_id, lora_path


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None = None
    logprobs: None = None
    finish_reason: str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: None
    outputs: list[CompletionOutput]
    finished: bool = True


@dataclass
class Calls:
    llm: list[dict] = field(default_factory=list)  # LLM(...) keyword arguments
    generate: list[dict] = field(default_factory=list)  # per call: prompts, params, lora requests
    loaded: dict[int, str] = field(default_factory=dict)  # lora_int_id -> the path first loaded under it
    fail_path: dict[str, str] = field(default_factory=dict)  # lora_path -> an error vLLM raises loading it


class LLM:
    calls: Calls

    def __init__(self, model: str, **kwargs):
        unknown = set(kwargs) - ENGINE_ARGS
        _check(not unknown, f"LLM got arguments EngineArgs does not have: {sorted(unknown)}")
        _check(isinstance(model, str) and (Path(model) / "config.json").is_file(), f"no model folder at {model!r}")
        _check(kwargs.get("trust_remote_code") is False, "the project never sets trust_remote_code")
        rank = kwargs.get("max_lora_rank", 16)
        if rank not in LORA_RANKS:
            raise ValueError(f"max_lora_rank ({rank}) must be one of {LORA_RANKS}")
        _check(isinstance(kwargs.get("max_loras", 1), int) and kwargs.get("max_loras", 1) >= 1, "max_loras >= 1")
        _check(isinstance(kwargs.get("seed", 0), int), "seed must be an int")
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(kwargs.get("tokenizer") or model)
        self.kwargs = kwargs
        self.calls.llm.append(dict(model=model, **kwargs))

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True, lora_request=None, priority=None):
        _check(isinstance(prompts, list) and prompts, "prompts must be a non-empty list here")
        for p in prompts:
            _check(isinstance(p, dict) and set(p) == {"prompt_token_ids"}, f"not a TokensPrompt: {p!r}")
            ids = p["prompt_token_ids"]
            _check(isinstance(ids, list) and ids and all(type(i) is int and 0 <= i < len(self.tokenizer) for i in ids),
                   "prompt_token_ids must be a list of ints in the vocabulary")
        _check(isinstance(sampling_params, SamplingParams), "sampling_params must be a SamplingParams")
        if isinstance(lora_request, list) and len(lora_request) != len(prompts):
            raise ValueError("The lengths of prompts and lora_request must be the same.")
        requests = lora_request if isinstance(lora_request, list) else [lora_request] * len(prompts)
        for r in requests:
            _check(r is None or isinstance(r, LoRARequest), f"not a LoRARequest: {r!r}")
            if r is not None:
                self._load(r)
        self.calls.generate.append({"prompts": prompts, "params": sampling_params, "lora": requests,
                                    "use_tqdm": use_tqdm})
        outputs = [self._answer(i, p["prompt_token_ids"], r, sampling_params) for i, (p, r) in enumerate(zip(prompts, requests))]
        self.calls.generate[-1]["outputs"] = outputs
        return outputs

    def _load(self, r: LoRARequest) -> None:
        if self.calls.loaded.setdefault(r.lora_int_id, r.lora_path) != r.lora_path:
            raise AssertionError(f"lora_int_id {r.lora_int_id} reused for another adapter: vLLM would serve the "
                                 "cached one")
        folder = Path(r.lora_path)
        config_file, weights = folder / "adapter_config.json", folder / "adapter_model.safetensors"
        if not config_file.is_file() or not weights.is_file():
            raise ValueError(f"{folder} is not a LoRA folder vLLM reads (adapter_config.json + adapter_model.safetensors)")
        if r.lora_path in self.calls.fail_path:
            raise RuntimeError(self.calls.fail_path[r.lora_path])
        config = json.loads(config_file.read_text())
        if config.get("use_dora"):
            raise ValueError("vLLM does not yet support DoRA.")
        if config.get("bias", "none") != "none":
            raise ValueError("Adapter bias cannot be used without bias_enabled.")
        if config["r"] > self.kwargs.get("max_lora_rank", 16):
            raise ValueError(f"LoRA rank {config['r']} is greater than max_lora_rank {self.kwargs['max_lora_rank']}.")

    def _answer(self, index: int, ids: list[int], r: LoRARequest | None, params: SamplingParams) -> RequestOutput:
        seed = hashlib.sha256(f"{r and r.lora_int_id}:{ids}".encode()).digest()
        vocab, eos, pad = len(self.tokenizer), self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        out = [seed[k % len(seed)] % vocab for k in range(params.max_tokens)]
        out = [t if t != eos else t + 1 for t in out]
        if pad is not None and pad != eos and len(out) > 2:
            out[1] = pad  # the pad id as an ordinary token: still a generated token
        ended = seed[0] % 2 == 0 and len(out) > 3 and eos is not None
        if ended:
            out = out[:3] + [eos]  # the row ends early; vLLM keeps the EOS in token_ids
        text = self.tokenizer.decode(out, skip_special_tokens=params.skip_special_tokens)
        return RequestOutput(str(index), None, ids, None, [CompletionOutput(0, text, out, finish_reason=(
            "stop" if ended else "length"))])


def install(monkeypatch) -> Calls:
    """Put the stand-in where ``import vllm`` and ``from vllm.lora.request import LoRARequest`` find it; a GPU
    appears to be there (``torch.cuda.is_available``), as the engine's preflight asks. Returns the call record."""
    import torch

    calls = Calls()
    llm = type("LLM", (LLM,), {"calls": calls})
    root, lora, request = (types.ModuleType(n) for n in ("vllm", "vllm.lora", "vllm.lora.request"))
    root.LLM, root.SamplingParams, root.LoRARequest, root.lora = llm, SamplingParams, LoRARequest, lora
    lora.request, request.LoRARequest = request, LoRARequest
    for name, module in (("vllm", root), ("vllm.lora", lora), ("vllm.lora.request", request)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    return calls
