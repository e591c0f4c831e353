"""Training backends: how the base is loaded and the adapter attached.

- ``peft`` (CPU or GPU): the base in the dtype of ``cortex.eval.base.default_dtype``, the project's one
  rule (float32 on a CPU; bfloat16 on a GPU that has it, float16 otherwise; ``bf16: false`` keeps
  float32) and a ``peft`` ``LoraConfig`` with ``use_dora`` for DoRA; the trainers inject the layers.
- ``qlora`` (``finetuning_type: qlora``): the base quantised to 4-bit NF4 by ``bitsandbytes``,
  prepared for k-bit training, LoRA on top. GPU only.
- ``unsloth``: ``FastLanguageModel`` loads the base and attaches the adapter with its fused
  kernels. GPU only.

:func:`check_backend` runs before any work (no data built, no model loaded): on a machine
without a GPU, or without the package, it stops with a message that says what to do.
:func:`load_stage_model` is the one way a stage (SFT, GRPO, KTO) gets its model: a fresh adapter on
the base, or the adapter an earlier stage saved, trainable again.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import torch

from cortex import hub_kernels
from cortex.errors import CortexError
from miner.config import TrainConfig

log = logging.getLogger(__name__)


class BackendUnavailable(CortexError):
    """The configured backend cannot run on this machine."""


def has_gpu() -> bool:
    return torch.cuda.is_available()


def check_backend(cfg: TrainConfig) -> str:
    """The device to train on ("cuda" or "cpu"); raises before any work if the backend cannot run."""
    needs_gpu = [what for what, on in (("finetuning_type: qlora (4-bit bitsandbytes)", cfg.finetuning_type == "qlora"),
                                       ("backend: unsloth", cfg.backend == "unsloth"),
                                       ("grpo_use_vllm: true", cfg.grpo_use_vllm and "grpo" in cfg.stage)) if on]
    if needs_gpu and not has_gpu():
        raise BackendUnavailable(
            f"{' and '.join(needs_gpu)} needs an NVIDIA GPU and none is visible (torch.cuda.is_available() is False): "
            "on this machine use finetuning_type: dora or lora with backend: peft (configs/tiny-cpu.yaml)"
        )
    if cfg.finetuning_type == "qlora" and importlib.util.find_spec("bitsandbytes") is None:
        raise BackendUnavailable("finetuning_type: qlora needs bitsandbytes: pip install -e '.[gpu]'")
    if cfg.backend == "unsloth" and importlib.util.find_spec("unsloth") is None:
        raise BackendUnavailable("backend: unsloth needs the unsloth package: pip install -e '.[unsloth]'")
    if cfg.grpo_use_vllm and "grpo" in cfg.stage and importlib.util.find_spec("vllm") is None:
        raise BackendUnavailable("grpo_use_vllm: true needs the vllm package: pip install -e '.[gpu]'")
    if cfg.backend == "unsloth" and (cfg.use_dora or cfg.lora_dropout != 0):
        log.warning("backend: unsloth skips its fast LoRA kernels for DoRA and for lora_dropout != 0 "
                    "(configs/gpu-8b-unsloth.yaml uses lora and 0.0)")
    return "cuda" if has_gpu() else "cpu"


def train_dtype(cfg: TrainConfig) -> torch.dtype:
    """The base's weights for training: ``bf16: true`` / ``false`` as asked (float32 on a CPU), else the one
    rule of ``cortex.eval.base.default_dtype`` (imported here: Unsloth must be imported before transformers)."""
    from cortex.eval.base import default_dtype

    if cfg.bf16 is not None:
        if cfg.bf16 and not has_gpu():
            log.warning("bf16: true on a CPU: training in float32 instead")
        return torch.bfloat16 if cfg.bf16 and has_gpu() else torch.float32
    return default_dtype("cuda" if has_gpu() else "cpu")


def use_bf16(cfg: TrainConfig) -> bool:
    """Whether the trainers run bf16 mixed precision: exactly when the base is loaded in bfloat16."""
    return train_dtype(cfg) == torch.bfloat16


def lora_config(cfg: TrainConfig, targets: list[str]):
    """The ``peft`` adapter configuration: DoRA is LoRA with ``use_dora``; nothing else trainable."""
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_rank, lora_alpha=cfg.alpha, lora_dropout=cfg.lora_dropout, target_modules=targets,
        use_dora=cfg.use_dora, bias="none", task_type="CAUSAL_LM",
    )


def quantization_config(cfg: TrainConfig):
    """QLoRA's base: bitsandbytes 4-bit NF4, double quantisation (``double_quantization``), bf16 compute;
    stored as bf16 so FSDP can shard it alongside the bf16 layers."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=cfg.double_quantization,
        bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_storage=torch.bfloat16,
    )


def load_for_training(cfg: TrainConfig, base: Path, targets: list[str]) -> tuple[Any, Any, Any]:
    """``(model, tokenizer, peft_config)``; with unsloth the model already carries its adapter (config None)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if cfg.backend == "unsloth":
        return (*_unsloth(cfg, base, targets), None)
    kwargs: dict[str, Any] = {"trust_remote_code": False, "use_safetensors": True, **hub_kernels.load_kwargs()}
    if cfg.finetuning_type == "qlora":
        kwargs["quantization_config"] = quantization_config(cfg)
        kwargs["dtype"] = torch.bfloat16
    else:
        kwargs["dtype"] = train_dtype(cfg)
    model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
    if cfg.finetuning_type == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    return model, tokenizer, lora_config(cfg, targets)


def _unsloth(cfg: TrainConfig, base: Path, targets: list[str]) -> tuple[Any, Any]:
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(base), max_seq_length=cfg.cutoff_len, dtype=None,
        load_in_4bit=cfg.finetuning_type == "qlora", trust_remote_code=False,
    )
    model = FastLanguageModel.get_peft_model(
        model, r=cfg.lora_rank, lora_alpha=cfg.alpha, lora_dropout=cfg.lora_dropout, target_modules=targets,
        bias="none", use_dora=cfg.use_dora, use_gradient_checkpointing="unsloth" if cfg.gradient_checkpointing else False,
        random_state=cfg.seed,
    )
    return model, tokenizer


def load_adapter_for_training(cfg: TrainConfig, base: Path, adapter: Path) -> tuple[Any, Any]:
    """The base with a trained adapter, trainable again: how GRPO and KTO continue after SFT."""
    from peft import PeftModel

    model, tokenizer, _ = load_for_training(cfg.replace(backend="peft"), base, [])
    return PeftModel.from_pretrained(model, str(adapter), is_trainable=True), tokenizer


def load_stage_model(cfg: TrainConfig, base: Path, targets: list[str], adapter: Path | None) -> tuple[Any, Any, Any]:
    """``(model, tokenizer, peft_config)`` for one stage: a new adapter (the trainer injects ``peft_config``)
    or, with ``adapter``, the one an earlier stage saved, already attached (``peft_config`` None)."""
    if adapter is None:
        return load_for_training(cfg, base, targets)
    return (*load_adapter_for_training(cfg, base, adapter), None)
