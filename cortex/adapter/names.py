"""Where a peft LoRA/DoRA tensor lives: the target modules of each supported architecture, and
the one pattern for tensor names.

Llama, Mistral and Qwen2 decoders name their projections alike: ``model.layers.{i}.self_attn.
{q,k,v,o}_proj`` and ``model.layers.{i}.mlp.{gate,up,down}_proj``, all ``nn.Linear``. peft saves a
causal-LM adapter's factors as ``base_model.model.<module>.lora_A.weight`` (r, in),
``….lora_B.weight`` (out, r) and, for DoRA, ``….lora_magnitude_vector`` (out,).
"""

from __future__ import annotations

import re

from cortex.errors import CortexError
from cortex.protocol.competition import LLAMA_TARGETS

# Target module → the block that holds it, for the decoders whose projections are named this way.
DECODER_MODULES: dict[str, str] = dict(zip(LLAMA_TARGETS, ("self_attn",) * 4 + ("mlp",) * 3, strict=True))
ARCHITECTURES: dict[str, dict[str, str]] = {"llama": DECODER_MODULES, "mistral": DECODER_MODULES,
                                            "qwen2": DECODER_MODULES}
EMBEDDINGS = ("embed_tokens", "lm_head", "wte", "embed_out")
PARTS = ("lora_A.weight", "lora_B.weight", "lora_magnitude_vector")
LORA_A, LORA_B, MAGNITUDE = PARTS

_PARENTS = "|".join(sorted({p for modules in ARCHITECTURES.values() for p in modules.values()}))
_TENSOR = re.compile(rf"base_model\.model\.model\.layers\.(0|[1-9][0-9]{{0,5}})\.({_PARENTS})\."
                     rf"([a-z_]+)\.({'|'.join(re.escape(p) for p in PARTS)})")


def target_modules(model_type: str) -> dict[str, str]:
    """Target module → parent block for a ``transformers`` ``model_type``; CortexError if unsupported."""
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        raise CortexError(f"base architecture {model_type!r} is not supported: adapters are checked for "
                          f"{sorted(ARCHITECTURES)}") from None


def module_key(layer: int, parent: str, module: str) -> str:
    """The module's name in the base model (what peft matches rank/alpha patterns against)."""
    return f"model.layers.{layer}.{parent}.{module}"


def tensor_name(key: str, part: str) -> str:
    """The saved name of ``part`` (one of :data:`PARTS`) for the module named ``key``."""
    return f"base_model.model.{key}.{part}"


def parse_tensor_name(name: str) -> tuple[int, str, str, str] | None:
    """(layer, parent, module, part) of a peft LoRA/DoRA tensor name, or None."""
    m = _TENSOR.fullmatch(name)
    return None if m is None else (int(m[1]), m[2], m[3], m[4])
