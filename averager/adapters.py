"""Reading a peft LoRA/DoRA adapter directory into per-module factors, refusing anything unexpected.

An adapter directory holds ``adapter_config.json`` and ``adapter_model.safetensors`` whose keys are
``base_model.model.<module>.lora_A.weight``, ``….lora_B.weight`` and, for DoRA,
``….lora_magnitude_vector``. The scaling is ``lora_alpha / r`` (``lora_alpha / √r`` with rsLoRA),
with per-module ``rank_pattern`` / ``alpha_pattern`` resolved exactly as peft resolves them.
Everything is read into fp32. Anything the exact merge does not model (biases, embeddings, extra
trained modules, variants that change the base, ``fan_in_fan_out``) is refused with a clear error.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors.torch import load_file

from averager.merge import LowRank, Term
from cortex.errors import CortexError

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
KEY_RE = re.compile(r"^base_model\.model\.(?P<module>.+)\."
                    r"(?P<part>lora_A\.weight|lora_B\.weight|lora_magnitude_vector(?:\.weight)?)$")
# Config keys that do not change what the saved factors mean (checked ones are handled below).
NEUTRAL = {
    "r", "lora_alpha", "target_modules", "exclude_modules", "layers_to_transform", "layers_pattern",
    "rank_pattern", "alpha_pattern", "use_dora", "use_rslora", "lora_dropout", "peft_type", "task_type",
    "base_model_name_or_path", "revision", "inference_mode", "auto_mapping", "peft_version",
    "init_lora_weights", "fan_in_fan_out", "bias", "qalora_group_size", "megatron_core",
    "ensure_weight_tying", "eva_config",
}
# Initialisations that leave the base weights alone (PiSSA, OLoRA, CorDA, LoftQ, LoRA-GA rewrite them).
PLAIN_INITS = {True, False, "gaussian", "eva", "orthogonal"}


class AdapterError(CortexError):
    """An adapter directory that cannot be merged exactly as it is."""


@dataclass(frozen=True)
class Adapter:
    """A loaded adapter: its factors per module (``model.layers.0.self_attn.q_proj`` → LowRank)."""

    path: Path
    use_dora: bool
    modules: dict[str, LowRank]
    config: dict[str, Any] = field(repr=False)

    @property
    def total_rank(self) -> int:
        return sum(f.rank for f in self.modules.values())


def pattern_value(pattern: dict[str, Any], module: str, default: Any) -> Any:
    """peft's ``get_pattern_key`` lookup: the first key matching ``(.*\\.)?KEY$`` wins."""
    for key in pattern:
        if re.match(rf"(.*\.)?({key})$", module):
            return pattern[key]
    return default


def check_config(cfg: dict[str, Any], where: str) -> None:
    """Raise AdapterError unless ``cfg`` is a plain LoRA/DoRA config this merge models exactly."""
    if cfg.get("peft_type") != "LORA":
        raise AdapterError(f"{where}: peft_type is {cfg.get('peft_type')!r}; only LORA (with or without "
                           "use_dora) adapters can be merged")
    if cfg.get("fan_in_fan_out"):
        raise AdapterError(f"{where}: fan_in_fan_out=true (GPT-2 style Conv1D layers) is not supported; "
                           "Cortex bases use nn.Linear, for which peft ignores it: retrain or set it false")
    if cfg.get("bias", "none") != "none":
        raise AdapterError(f"{where}: bias={cfg['bias']!r} trains biases the merge does not carry; "
                           "train with bias='none'")
    if cfg.get("init_lora_weights", True) not in PLAIN_INITS:
        raise AdapterError(f"{where}: init_lora_weights={cfg['init_lora_weights']!r} rewrites the base "
                           "weights; convert it to a plain LoRA first (peft's "
                           "path_initial_model_for_weight_conversion)")
    if cfg.get("use_rslora") and (cfg.get("rank_pattern") or cfg.get("alpha_pattern")):
        raise AdapterError(f"{where}: use_rslora with rank_pattern/alpha_pattern is not allowed by peft")
    for key, value in cfg.items():
        if key not in NEUTRAL and value:
            raise AdapterError(f"{where}: {key}={value!r} is not supported by the exact merge; "
                               "use a plain LoRA/DoRA adapter on Linear layers")


def _scale(cfg: dict[str, Any], module: str, rank: int, where: str) -> float:
    expected = int(pattern_value(cfg.get("rank_pattern") or {}, module, cfg["r"]))
    if rank != expected:
        raise AdapterError(f"{where}: {module} has rank {rank} but the config says {expected}")
    alpha = float(pattern_value(cfg.get("alpha_pattern") or {}, module, cfg["lora_alpha"]))
    return alpha / math.sqrt(rank) if cfg.get("use_rslora") else alpha / rank


def load_adapter(path: str | Path) -> Adapter:
    """Read an adapter directory into fp32 factors per module, or raise AdapterError saying why not."""
    root = Path(path)
    where = str(root)
    if not (root / CONFIG_FILE).is_file():
        raise AdapterError(f"{where}: no {CONFIG_FILE}; pass a peft adapter directory")
    if not (root / WEIGHTS_FILE).is_file():
        raise AdapterError(f"{where}: no {WEIGHTS_FILE} (pickled adapter_model.bin is never loaded); "
                           "save the adapter with safe_serialization=True")
    try:
        cfg = json.loads((root / CONFIG_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise AdapterError(f"{where}: {CONFIG_FILE} is not valid JSON ({exc})") from None
    check_config(cfg, where)
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in load_file(str(root / WEIGHTS_FILE)).items():
        match = KEY_RE.match(key)
        if match is None:
            raise AdapterError(f"{where}: unexpected tensor {key!r}; only lora_A, lora_B and DoRA "
                               "magnitudes on Linear layers can be merged")
        if not torch.isfinite(tensor).all():
            raise AdapterError(f"{where}: tensor {key!r} has NaN or infinite values")
        part = match["part"].split(".")[0]
        parts.setdefault(match["module"], {})[part] = tensor.float()
    if not parts:
        raise AdapterError(f"{where}: {WEIGHTS_FILE} holds no LoRA factors")
    use_dora = bool(cfg.get("use_dora"))
    modules = {}
    for module, got in sorted(parts.items()):
        need = {"lora_A", "lora_B"} | ({"lora_magnitude_vector"} if use_dora else set())
        if set(got) != need:
            raise AdapterError(f"{where}: {module} has {sorted(got)}, expected {sorted(need)} "
                               f"(use_dora={use_dora})")
        A, B, mag = got["lora_A"], got["lora_B"], got.get("lora_magnitude_vector")
        if A.ndim != 2 or B.ndim != 2 or A.shape[0] != B.shape[1]:
            raise AdapterError(f"{where}: {module} has A{tuple(A.shape)} and B{tuple(B.shape)}, which "
                               "are not Linear LoRA factors")
        if mag is not None and mag.shape != (B.shape[0],):
            raise AdapterError(f"{where}: {module} magnitude {tuple(mag.shape)} does not match "
                               f"{B.shape[0]} output features")
        modules[module] = LowRank(A=A, B=B, scale=_scale(cfg, module, A.shape[0], where), magnitude=mag)
    return Adapter(path=root, use_dora=use_dora, modules=modules, config=cfg)


def group_terms(weighted: Sequence[tuple[Adapter, float]]) -> dict[str, list[Term]]:
    """Module name → [(weight, factors), …] over every adapter that targets it, in input order."""
    modules: dict[str, list[Term]] = {}
    for adapter, weight in weighted:
        for module, factors in adapter.modules.items():
            modules.setdefault(module, []).append((float(weight), factors))
    return dict(sorted(modules.items()))
