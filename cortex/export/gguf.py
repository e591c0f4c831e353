"""A Llama-architecture Hugging Face folder to one GGUF file for llama.cpp, written with the ``gguf`` package.

Why not llama.cpp's ``convert_hf_to_gguf.py``: it ships with llama.cpp's sources, not with the ``gguf``
package on PyPI, and this project installs nothing outside a registry. What the converter does for a
Llama, this module does with the package's own pieces: the tensor names from ``gguf.get_tensor_name_map``,
the metadata through ``GGUFWriter``'s ``add_*`` calls, quantization through ``gguf.quants.quantize``, and the
one transformation the converter applies to Llama weights: the rows of ``q_proj`` and ``k_proj`` are
permuted from Hugging Face's half-split rotary layout to llama.cpp's interleaved one (``_permute``, the
converter's ``LlamaModel.permute``).

The tokenizer goes in as a byte-level BPE (``tokenizer.ggml.model = gpt2``) with its merges, special
tokens and chat template; the embedding rows past the tokenizer's vocabulary (the tiny base pads it to a
multiple of 64) are named ``[PAD n]`` and marked unused. llama.cpp splits raw text with its own fixed
pre-tokenizers, which do not include the tiny base's (digits in groups of three, upper-case runs): give it
the prompt's token ids (the project's prompt builder) for the same tokens as every other engine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cortex.errors import CortexError

TYPES = ("f32", "f16", "q8_0")  # what --gguf accepts


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    """Hugging Face's rotary row order to llama.cpp's (convert_hf_to_gguf.LlamaModel.permute)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _vocab(folder: Path, size: int) -> tuple[list[str], list[int], list[str]]:
    """(tokens, token types, merges) from ``tokenizer.json``, padded to the embedding's ``size`` rows."""
    import gguf

    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    model = data.get("model", {})
    if model.get("type") != "BPE":
        raise CortexError(f"GGUF export: the tokenizer is {model.get('type')!r}; only byte-level BPE is supported")
    by_id = {i: t for t, i in model["vocab"].items()}
    types = {i: gguf.TokenType.NORMAL for i in by_id}
    for added in data.get("added_tokens", []):
        by_id[added["id"]] = added["content"]
        types[added["id"]] = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
    if max(by_id) >= size:
        raise CortexError(f"GGUF export: the tokenizer has ids up to {max(by_id)} but the embedding only {size} rows")
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(size)]
    kinds = [int(types.get(i, gguf.TokenType.UNUSED)) for i in range(size)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return tokens, kinds, merges


def export_gguf(folder: Path, out: Path, kind: str = "f16") -> Path:
    """Write ``folder``'s model (a ``LlamaForCausalLM``) as GGUF ``kind`` (f32, f16 or q8_0) to ``out``."""
    import gguf
    from safetensors.numpy import load_file
    from transformers import AutoConfig, AutoTokenizer

    if kind not in TYPES:
        raise CortexError(f"--gguf takes {', '.join(TYPES)}, got {kind!r}")
    folder = Path(folder)
    config = AutoConfig.from_pretrained(folder, trust_remote_code=False, local_files_only=True)
    if config.model_type != "llama":
        raise CortexError(f"GGUF export supports Llama models; {folder} is {config.model_type!r}")
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False, local_files_only=True)
    shards = sorted(folder.glob("model*.safetensors"))
    if not shards:
        raise CortexError(f"{folder} has no safetensors weights")
    weights: dict[str, np.ndarray] = {}
    for shard in shards:
        weights.update(load_file(shard))

    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    rope = (getattr(config, "rope_parameters", None) or {}).get("rope_theta") or getattr(config, "rope_theta", 10000.0)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[kind]

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_name(folder.name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    tokens, kinds, merges = _vocab(folder, config.vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(kinds)
    writer.add_token_merges(merges)
    for setter, token_id in ((writer.add_bos_token_id, tokenizer.bos_token_id),
                             (writer.add_eos_token_id, tokenizer.eos_token_id),
                             (writer.add_pad_token_id, tokenizer.pad_token_id)):
        if token_id is not None:
            setter(int(token_id))
    writer.add_add_bos_token(False)  # the chat template writes the BOS itself
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)

    for name, tensor in weights.items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # llama.cpp uses the token embedding when there is no output tensor
        target = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise CortexError(f"GGUF export: no llama.cpp name for tensor {name}")
        data = tensor.astype(np.float32)
        if name.endswith("q_proj.weight"):
            data = _permute(data, heads)
        elif name.endswith("k_proj.weight"):
            data = _permute(data, kv_heads)
        if data.ndim == 1 or kind == "f32":  # norms stay f32, as the converter keeps them
            writer.add_tensor(target, data)
        elif kind == "f16" or data.shape[-1] % gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0]:
            writer.add_tensor(target, data.astype(np.float16))  # rows that are not whole q8_0 blocks: f16, as the converter does
        else:
            qtype = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(target, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out)
    return out
