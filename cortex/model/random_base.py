"""A random-initialised base of a real architecture, with a real family's chat template and special tokens.

What the miner's template tests train on (a tiny Llama, Qwen2 or Mistral with the Llama 3.1,
Qwen2.5 or Mistral template) and what ``bench/gpu_miner.py`` trains on a GPU (the Llama-3.1-8B
shape in bf16). The weights are random and the tokenizer is a small byte-level BPE learned from
the caller's texts, with the family's special tokens added whole: enough to exercise every code
path that depends on the chat template, the stop token and the architecture (loss masks, LoRA
target modules, generation, adapter loading) without downloading a real base. A real base is
never replaced by one of these outside tests and benchmarks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig, PreTrainedTokenizerFast


@dataclass(frozen=True)
class Family:
    """A chat-model family: its architecture and the special tokens its template and tokenizer use."""

    model_type: str  # transformers' model_type: llama | qwen2 | mistral
    eos: str  # the tokenizer's eos: the end-of-turn token the template writes after an answer
    bos: str | None
    pad: str | None  # None: the base ships no pad token (the miner pads with eos)
    special: tuple[str, ...]  # every special token, bos/eos/pad included
    unk: str | None = None


FAMILIES: dict[str, Family] = {
    # meta-llama/Llama-3.1-8B-Instruct: eos <|eot_id|> (end of turn), no pad token
    "llama3": Family("llama", eos="<|eot_id|>", bos="<|begin_of_text|>", pad=None,
                     special=("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                              "<|eot_id|>", "<|eom_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>")),
    # Qwen/Qwen2.5-*-Instruct: eos <|im_end|>, pad <|endoftext|>, no bos
    "qwen2": Family("qwen2", eos="<|im_end|>", bos=None, pad="<|endoftext|>",
                    special=("<|endoftext|>", "<|im_start|>", "<|im_end|>")),
    # mistralai/Mistral-Nemo-Instruct-2407 (tokenizer v3): bos <s>, eos </s>, no pad
    "mistral": Family("mistral", eos="</s>", bos="<s>", pad=None, unk="<unk>",
                      special=("<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
                               "[TOOL_CALLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]")),
}

# Architectures (transformers config keys). LLAMA_3_1_8B is meta-llama/Llama-3.1-8B-Instruct's
# shape; its llama3 RoPE scaling (long context) is left out: it changes no parameter or FLOP count.
LLAMA_3_1_8B = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
                "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 8192,
                "rope_theta": 500_000.0, "tie_word_embeddings": False}
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 1, "vocab_size": None, "max_position_embeddings": 4096, "rope_theta": 10_000.0,
        "tie_word_embeddings": True}


def build_tokenizer(family: Family, chat_template: str, texts: Iterable[str], vocab_size: int = 1024,
                    ) -> PreTrainedTokenizerFast:
    """A byte-level BPE learned from ``texts`` with ``family``'s special tokens whole, and ``chat_template``."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=[AddedToken(t, special=True, normalized=False) for t in family.special],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    named = {"bos_token": family.bos, "eos_token": family.eos, "pad_token": family.pad, "unk_token": family.unk}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, **{k: v for k, v in named.items() if v is not None},
        additional_special_tokens=[t for t in family.special if t not in named.values()],
        clean_up_tokenization_spaces=False, model_max_length=131072,
    )
    fast.chat_template = chat_template
    return fast


def model_config(family: Family, tokenizer: PreTrainedTokenizerFast, shape: dict[str, Any]):
    """The family's transformers config for ``shape``; the vocabulary at least the tokenizer's."""
    arch = dict(shape)
    rope_theta = arch.pop("rope_theta")
    vocab = arch.pop("vocab_size") or -(-len(tokenizer) // 64) * 64
    if vocab < len(tokenizer):
        raise ValueError(f"vocab_size {vocab} is smaller than the tokenizer ({len(tokenizer)} tokens)")
    return AutoConfig.for_model(
        family.model_type, vocab_size=vocab, rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, hidden_act="silu", rms_norm_eps=1e-5, use_cache=True, **arch,
    )


def build_base(out: Path, family: str, chat_template: str, texts: Iterable[str], *, shape: dict[str, Any] = TINY,
               dtype: torch.dtype = torch.float32, device: str = "cpu", seed: int = 0,
               max_shard_size: str = "5GB") -> Path:
    """Write a random-initialised base folder (config, safetensors, tokenizer, template) to ``out``."""
    fam = FAMILIES[family]
    tokenizer = build_tokenizer(fam, chat_template, texts)
    config = model_config(fam, tokenizer, shape)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        do_sample=False,
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(out)
    (out / "random_base.json").write_text(json.dumps({"family": family, "shape": shape, "seed": seed,
                                                      "dtype": str(dtype)}, indent=1) + "\n")
    del model
    return out
