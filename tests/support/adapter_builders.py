"""Adapter builders shared by the adapter-check and averager tests: a tiny Llama config and real
peft adapters of it with non-zero factors."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from cortex.adapter import LLAMA_TARGETS


def tiny_config():
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=8)


def save_peft(model, folder: Path, seed: int = 1, std: float = 0.02, **lora) -> Path:
    """A real peft adapter of ``model`` with randomised lora_B (peft initialises it to zero), ``std`` its spread."""
    from peft import LoraConfig, get_peft_model

    options = {"r": 4, "lora_alpha": 8, "target_modules": list(LLAMA_TARGETS), "task_type": "CAUSAL_LM"}
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(model, LoraConfig(**{**options, **lora}))
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0.0, std)
                if "lora_magnitude_vector" in name:
                    p.mul_(1.05)
        peft_model.save_pretrained(folder)
    return folder
