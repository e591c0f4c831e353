"""The one config policy: which ``adapter_config.json`` a Cortex adapter may have, and what it means.

Stock peft output must pass: every key ``peft`` 0.21 writes for a LoRA/DoRA is known here, either
informational (with its valid values), required to stay unset (with the reason code when set), or
read (``r``, ``lora_alpha``, targets, patterns, layers). Anything else is refused, because an
unknown key is a peft feature the checks do not model.

Why this policy is strict where the averager's old copy was lax: the averager merges only what
validators scored, and a validator scores zero whatever this policy refuses; so the two must agree,
and the refusing side is the one that protects evaluation. ``init_lora_weights`` may only be
``True``, ``False`` or ``"gaussian"``: PiSSA/OLoRA/CorDA/LoftQ/LoRA-GA initialisations rewrite the
base weights, so their factors mean nothing on the unchanged base; EVA and orthogonal inits need
extra config blocks the checks refuse anyway.

``auto_mapping`` is what ``PeftModel.save_pretrained`` records when no ``task_type`` is set:
``{"base_model_class": "LlamaForCausalLM", "parent_library": "transformers.models.llama.modeling_llama"}``
(``base_model_class.__module__``). peft's ``AutoPeftModel`` imports ``parent_library``, so only a
module of ``transformers`` is accepted; anything else is ``remote_code``.

The scale of a module is ``lora_alpha / r`` (``lora_alpha / √r`` with rsLoRA), with ``r`` and
``lora_alpha`` taken from ``rank_pattern`` / ``alpha_pattern`` exactly as peft's
``get_pattern_key`` resolves them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cortex.adapter.errors import AdapterRejected
from cortex.adapter.files import CONFIG_FILE
from cortex.adapter.header import strict_json
from cortex.adapter.names import EMBEDDINGS
from cortex.typed import is_int

if TYPE_CHECKING:
    from cortex.adapter.spec import BaseSpec
    from cortex.protocol.competition import AdapterLimits

_PATTERN_KEY = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*")
_LIBRARY = re.compile(r"transformers(\.[a-z_][a-z0-9_]*)*")
_CLASS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _is_pos(v: Any) -> bool:  # a finite number > 0 (and < 1e12, so even a huge int is safe)
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1e12


def _is_text(v: Any) -> bool:
    return v is None or (isinstance(v, str) and len(v) <= 256)


# Keys peft 0.21.2 turns into a sub-config dataclass (``_get_lora_subconfig``): any value but a dict or
# None makes peft raise on an adapter the checks had passed.
_SUBCONFIGS = frozenset({"velora_config", "kasa_config", "eva_config", "corda_config", "lora_ga_config",
                         "arrow_config", "use_bdlora"})


def _empty(key: str, v: Any) -> bool:
    """Whether ``key`` is unset: None, False, [] or {}; for a sub-config key only None or {}."""
    if key in _SUBCONFIGS:
        return v is None or v == {}
    return v is None or v is False or v == [] or v == {}


def is_transformers_class(mapping: Any) -> bool:
    """True for the ``auto_mapping`` peft writes for a base class of ``transformers`` (see above)."""
    return (isinstance(mapping, dict) and set(mapping) == {"base_model_class", "parent_library"}
            and isinstance(mapping["parent_library"], str) and len(mapping["parent_library"]) <= 128
            and _LIBRARY.fullmatch(mapping["parent_library"]) is not None
            and isinstance(mapping["base_model_class"], str) and len(mapping["base_model_class"]) <= 128
            and _CLASS.fullmatch(mapping["base_model_class"]) is not None)


# Keys peft 0.21.2 writes for LoRA whose value is only informational: each with its valid values.
_FREE = {
    "task_type": lambda v: v in (None, "CAUSAL_LM"), "inference_mode": lambda v: isinstance(v, bool),
    "peft_version": _is_text, "base_model_name_or_path": _is_text, "revision": _is_text,
    "lora_dropout": lambda v: v == 0 or (_is_pos(v) and v < 1), "use_rslora": lambda v: isinstance(v, bool),
    "qalora_group_size": lambda v: is_int(v, 0), "init_lora_weights": lambda v: v in (True, False, "gaussian"),
    "layers_pattern": lambda v: v in (None, "layers", ["layers"]), "use_dora": lambda v: isinstance(v, bool),
}
# Keys that must stay unset (None, False, [] or {}), with the reason when they are not.
_UNSET = {
    "megatron_config": "remote_code",
    "modules_to_save": "adds_trainable", "layer_replication": "adds_trainable",
    "target_parameters": "adds_trainable", "lora_bias": "adds_trainable",
    "trainable_token_indices": "replaces_embeddings", "ensure_weight_tying": "replaces_embeddings",
    **dict.fromkeys(("exclude_modules", "alora_invocation_tokens", "eva_config", "corda_config",
                     "lora_ga_config", "velora_config", "monteclora_config", "arrow_config",
                     "kasa_config", "use_bdlora", "loftq_config", "use_qalora", "fan_in_fan_out"),
                    "bad_config"),
}
_OTHER = {"peft_type", "r", "lora_alpha", "target_modules", "bias", "rank_pattern", "alpha_pattern",
          "layers_to_transform", "megatron_core", "auto_mapping"}
ALLOWED_CONFIG_KEYS = frozenset(_FREE) | frozenset(_UNSET) | _OTHER


@dataclass(frozen=True)
class AdapterConfig:
    """What a checked ``adapter_config.json`` says: type, rank, scale, and which modules it trains."""

    dora: bool
    r: int
    alpha: float
    rslora: bool
    targets: tuple[str, ...]  # short module names, sorted
    layers: tuple[int, ...]  # the layers it trains, sorted
    rank_pattern: Mapping[str, int]
    alpha_pattern: Mapping[str, float]
    revision: str | None = None  # the base revision it names (informational)

    @property
    def adapter_type(self) -> str:
        return "dora" if self.dora else "lora"

    def _pick(self, pattern: Mapping[str, Any], key: str, default: Any) -> Any:
        for p in pattern:  # peft's get_pattern_key; keys are dotted names, so the regex is tame
            if re.match(rf"(.*\.)?({p})$", key):
                return pattern[p]
        return default

    def rank(self, key: str) -> int:
        """The rank of the module named ``key`` (``model.layers.0.self_attn.q_proj``)."""
        return self._pick(self.rank_pattern, key, self.r)

    def scale(self, key: str) -> float:
        """peft's scaling of the module named ``key``: alpha / r, or alpha / √r with rsLoRA."""
        alpha, r = self._pick(self.alpha_pattern, key, self.alpha), self.rank(key)
        return alpha / math.sqrt(r) if self.rslora else alpha / r


def _reject(reason: str, message: str) -> AdapterRejected:
    return AdapterRejected(reason, message)


def read_config(path: Path, base: BaseSpec, limits: AdapterLimits) -> AdapterConfig:
    """Parse and check ``adapter_config.json`` against the policy, the base and the limits."""
    try:
        cfg = strict_json(path.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise _reject("bad_config", f"{CONFIG_FILE} is not valid JSON: {str(exc)[:80]}") from None
    if not isinstance(cfg, dict):
        raise _reject("bad_config", f"{CONFIG_FILE} is not a JSON object")
    for key in cfg:
        if "remote" in key.lower() or "trust" in key.lower():
            raise _reject("remote_code", f"{CONFIG_FILE} key {key[:60]!r} asks for remote code")
    if cfg.get("megatron_core") not in (None, "megatron.core"):
        raise _reject("remote_code", "megatron_core names a module to import")
    mapping = cfg.get("auto_mapping")
    if not _empty("auto_mapping", mapping) and not is_transformers_class(mapping):
        raise _reject("remote_code", f"auto_mapping must name a transformers class, got {str(mapping)[:80]}")
    unknown = sorted(set(cfg) - ALLOWED_CONFIG_KEYS)
    if unknown:
        raise _reject("config_key_not_allowed", f"{CONFIG_FILE} keys not allowed: {unknown[:5]}")
    for key in ("peft_type", "r", "lora_alpha", "target_modules"):
        if key not in cfg:
            raise _reject("bad_config", f"{CONFIG_FILE} lacks {key!r}")
    dora = cfg.get("use_dora", False)
    kind = "dora" if dora is True else "lora"
    if cfg["peft_type"] != "LORA" or kind not in limits.types:
        raise _reject("adapter_type", f"{str(cfg['peft_type'])[:20]!r}/{kind} is not among {list(limits.types)}")
    for key, reason in _UNSET.items():
        value = cfg.get(key)
        if not _empty(key, value):
            if key == "modules_to_save" and any(e in str(value) for e in EMBEDDINGS):
                reason = "replaces_embeddings"
            raise _reject(reason, f"{key} must be unset, got {str(value)[:80]}")
    if cfg.get("bias", "none") != "none":
        raise _reject("adds_trainable", f"bias must be 'none', got {str(cfg['bias'])[:20]!r}")
    for key, ok in _FREE.items():
        if key in cfg and not ok(cfg[key]):
            raise _reject("bad_config", f"{key}: invalid value {str(cfg[key])[:80]}")
    targets = cfg["target_modules"]
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise _reject("target_not_allowed", "target_modules must be a list of module names")
    for t in targets:
        if any(e in t for e in EMBEDDINGS):
            raise _reject("replaces_embeddings", f"target module {t[:60]!r} is an embedding")
        if t not in limits.target_modules or t not in base.modules:
            raise _reject("target_not_allowed", f"{t[:60]!r} is not among {list(limits.target_modules)}")
    ranks, alphas = cfg.get("rank_pattern") or {}, cfg.get("alpha_pattern") or {}
    for name, pattern, ok in (("rank_pattern", ranks, lambda v: is_int(v, 1)),
                              ("alpha_pattern", alphas, _is_pos)):
        if not isinstance(pattern, dict) or not all(
            len(k) <= 128 and _PATTERN_KEY.fullmatch(k) and ok(v) for k, v in pattern.items()
        ):
            raise _reject("bad_config", f"{name} must map module names to positive numbers")
    r = cfg["r"]
    if not is_int(r, 1) or not _is_pos(cfg["lora_alpha"]):
        raise _reject("bad_config", "r must be an integer >= 1 and lora_alpha a number > 0")
    if max([r, *ranks.values()]) > limits.max_rank:
        raise _reject("rank_over_limit", f"rank {max([r, *ranks.values()])} > {limits.max_rank}")
    layers = cfg.get("layers_to_transform")
    layers = list(range(base.num_layers)) if layers is None else [layers] if is_int(layers, 0) else layers
    if not isinstance(layers, list) or not layers or len(set(map(str, layers))) != len(layers) or not all(
        is_int(i, 0) and i < base.num_layers for i in layers
    ):
        raise _reject("bad_config", f"layers_to_transform must list layers below {base.num_layers}")
    return AdapterConfig(bool(dora), r, float(cfg["lora_alpha"]), bool(cfg.get("use_rslora", False)),
                         tuple(sorted(set(targets))), tuple(sorted(layers)), ranks, alphas, cfg.get("revision"))
