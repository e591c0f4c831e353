"""The tiny base: a small Llama-architecture model, built deterministically from a seed.

Sized to pre-train in a couple of minutes on two CPU cores and to serve as the ``cortex-tiny``
competition's base, so the whole DoRA/LoRA → validator → averager path runs offline on the same
``LlamaForCausalLM`` code that a Llama 3.3 70B Instruct base uses on a real network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

TINY_REPO = "cortex/tiny-llama"  # the cortex-tiny competition's base repo (cortex.protocol.competition)


@dataclass(frozen=True)
class TinyConfig:
    """The architecture's knobs; the vocabulary size comes from the tokenizer."""

    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 688
    max_position_embeddings: int = 2048
    rope_theta: float = 10_000.0
    tie_word_embeddings: bool = True
    initializer_range: float = 0.02
    vocab_multiple: int = 64  # the embedding is padded to a multiple of this (faster matmuls)

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be divisible by num_attention_heads")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be divisible by num_key_value_heads")


def llama_config(cfg: TinyConfig, tokenizer: PreTrainedTokenizerBase) -> LlamaConfig:
    """A ``LlamaConfig`` for ``cfg`` whose special-token ids are the tokenizer's."""
    vocab = -(-len(tokenizer) // cfg.vocab_multiple) * cfg.vocab_multiple
    arch = {k: v for k, v in asdict(cfg).items() if k not in ("vocab_multiple", "rope_theta")}
    return LlamaConfig(
        vocab_size=vocab,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        hidden_act="silu",
        rms_norm_eps=1e-5,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        use_cache=True,
        **arch,
    )


def generation_config(tokenizer: PreTrainedTokenizerBase, max_new_tokens: int = 384) -> GenerationConfig:
    """Greedy decoding that stops at ``<|end|>``: how validators query a base."""
    return GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=max_new_tokens,
    )


def build_model(cfg: TinyConfig, tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> LlamaForCausalLM:
    """A freshly initialised model: the same ``cfg``, tokenizer and seed give the same weights."""
    config = llama_config(cfg, tokenizer)
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.generation_config = generation_config(tokenizer)
    return model.float()


def parameter_count(model: torch.nn.Module) -> int:
    """Distinct parameters (a tied embedding counts once)."""
    return sum(p.numel() for p in model.parameters())
