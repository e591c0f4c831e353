"""Adapter checks: a submitted peft LoRA/DoRA folder is untrusted input (DESIGN.md §9, issue 5 step 4).

``check_adapter`` passes a folder only if every file, every ``adapter_config.json`` key and every
tensor is what an honest ``peft`` LoRA/DoRA of the competition's base would hold; otherwise it raises
:class:`AdapterRejected` with a short, stable ``reason`` (docs/adapter-checks.md lists them). The order
is cheapest and safest first: file names and sizes (from ``stat``), the content hash, the config,
the safetensors header (parsed here, never unpickled), names and shapes against the base, and only
then the tensor values (loaded by ``safetensors``): finite, bounded, norms bounded.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cortex.errors import CortexError
from cortex.hub.store import ADAPTER_FILES
from cortex.protocol.competition import AdapterLimits
from cortex.protocol.hashing import content_hash
from validator.safetensors_header import (
    HeaderError,
    TensorInfo,
    load_checked,
    read_header,
    strict_json,
)

CONFIG, WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
MAX_CONFIG_BYTES = 64 << 10
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".dill", ".npy", ".npz")
EMBEDDINGS = ("embed_tokens", "lm_head", "wte", "embed_out")
LLAMA_MODULES = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn",
                 "o_proj": "self_attn", "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}
_TENSOR = re.compile(r"base_model\.model\.model\.layers\.(0|[1-9][0-9]{0,5})\.(self_attn|mlp)\."
                     r"([a-z_]+)\.(lora_A\.weight|lora_B\.weight|lora_magnitude_vector)")
_PATTERN_KEY = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*")


class AdapterRejected(CortexError):
    """An adapter that fails a check: it scores zero, with ``reason`` recorded."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"adapter rejected ({reason}): {message}")
        self.reason, self.message = reason, message


@dataclass(frozen=True)
class BaseSpec:
    """What adapters must fit: each target module's (parent, in_features, out_features), the layer
    count, and optionally the base weights' norms by ``"layers.{i}.{name}"``: (‖W‖_F, largest row norm)."""

    num_layers: int
    modules: Mapping[str, tuple[str, int, int]]
    weight_norms: Mapping[str, tuple[float, float]] | None = None

    @classmethod
    def from_config(cls, config: Any) -> BaseSpec:
        """From a Llama-shaped ``transformers`` config, without building the model."""
        hidden, inter = config.hidden_size, config.intermediate_size
        heads = config.num_attention_heads
        kv = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or hidden // heads
        q, k = heads * head_dim, kv * head_dim
        features = {"q_proj": (hidden, q), "k_proj": (hidden, k), "v_proj": (hidden, k),
                    "o_proj": (q, hidden), "gate_proj": (hidden, inter), "up_proj": (hidden, inter),
                    "down_proj": (inter, hidden)}
        mods = {name: (LLAMA_MODULES[name], i, o) for name, (i, o) in features.items()}
        return cls(int(config.num_hidden_layers), mods)

    @classmethod
    def from_model(cls, model: Any) -> BaseSpec:
        """From a loaded ``LlamaForCausalLM``, with its weight norms (for relative norm bounds)."""
        import torch

        spec, norms = cls.from_config(model.config), {}
        with torch.no_grad():
            for i in range(spec.num_layers):
                for name, (parent, _, _) in spec.modules.items():
                    w = model.get_submodule(f"model.layers.{i}.{parent}.{name}").weight.double()
                    norms[f"layers.{i}.{name}"] = (float(w.norm()), float(w.norm(dim=1).max()))
        return cls(spec.num_layers, spec.modules, norms)

    @classmethod
    def from_files(cls, base_dir: Path) -> BaseSpec:
        """The same as :meth:`from_model`, read from a model folder's config and safetensors (each shard
        opened once, one tensor at a time) without building the model."""
        import json

        import torch
        from safetensors import safe_open
        from transformers import AutoConfig

        spec = cls.from_config(AutoConfig.from_pretrained(base_dir, trust_remote_code=False, local_files_only=True))
        names = {f"layers.{i}.{name}": f"model.layers.{i}.{parent}.{name}.weight"
                 for i in range(spec.num_layers) for name, (parent, _, _) in spec.modules.items()}
        index = base_dir / "model.safetensors.index.json"
        where = json.loads(index.read_text())["weight_map"] if index.is_file() else {}
        by_shard: dict[str, list[str]] = {}
        for key, tensor in names.items():
            by_shard.setdefault(where.get(tensor, "model.safetensors"), []).append(key)
        norms = {}
        for shard, keys in by_shard.items():
            with safe_open(str(base_dir / shard), framework="pt") as f:
                for key in keys:
                    w = f.get_tensor(names[key]).to(torch.float64)
                    norms[key] = (float(w.norm()), float(w.norm(dim=1).max()))
        return cls(spec.num_layers, spec.modules, {key: norms[key] for key in names})


@dataclass(frozen=True)
class NormBounds:
    """Bounds on values; relative ones apply when the BaseSpec has weight norms, absolute otherwise."""

    max_abs_value: float = 1e4  # any single adapter value
    max_delta_norm: float = 1e3  # ‖s·B·A‖_F per module
    max_relative_delta: float = 2.0  # ‖s·B·A‖_F / ‖W‖_F
    max_magnitude: float = 1e3  # DoRA magnitude entries
    max_relative_magnitude: float = 4.0  # DoRA magnitude / largest row norm of W


@dataclass(frozen=True)
class CheckedAdapter:
    """What passed: ``rank`` is the config's ``r``; ``delta_norms`` maps "layers.{i}.{name}" to ‖s·B·A‖_F."""

    adapter_type: str
    rank: int
    target_modules: tuple[str, ...]
    n_params: int
    n_bytes: int
    dtypes: tuple[str, ...]
    delta_norms: Mapping[str, float]
    content_hash: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class _Config:
    dora: bool
    r: int
    alpha: float
    rslora: bool
    targets: tuple[str, ...]
    layers: tuple[int, ...]
    rank_pattern: Mapping[str, int]
    alpha_pattern: Mapping[str, float]

    def _pick(self, pattern: Mapping[str, Any], key: str, default: Any) -> Any:
        for p in pattern:  # peft's get_pattern_key; keys are dotted names, so the regex is tame
            if re.match(rf"(.*\.)?({p})$", key):
                return pattern[p]
        return default

    def rank(self, key: str) -> int:
        return self._pick(self.rank_pattern, key, self.r)

    def scale(self, key: str) -> float:
        alpha, r = self._pick(self.alpha_pattern, key, self.alpha), self.rank(key)
        return alpha / math.sqrt(r) if self.rslora else alpha / r


def _reject(reason: str, message: str) -> AdapterRejected:
    return AdapterRejected(reason, message)


def _check_files(folder: Path, limits: AdapterLimits) -> dict[str, int]:
    """Names and sizes from ``lstat`` only: nothing is opened yet."""
    try:
        entries = {e.name: e.stat(follow_symlinks=False) for e in os.scandir(folder)}
    except OSError as exc:
        raise _reject("missing_config", f"cannot list {folder}: {exc.strerror}") from None
    for name in sorted(entries):
        if name.lower().endswith(PICKLE_SUFFIXES):
            raise _reject("pickle", f"{name}: pickle-based files are never loaded; ship safetensors only")
    for name, st in sorted(entries.items()):
        if name not in ADAPTER_FILES:
            raise _reject("extra_files", f"{name} is not one of {sorted(ADAPTER_FILES)}")
        if not stat.S_ISREG(st.st_mode):
            raise _reject("not_regular_file", f"{name} is a link, folder or device, not a file")
    sizes = {name: st.st_size for name, st in entries.items()}
    total = sum(sizes.values())
    if total > limits.max_bytes:
        raise _reject("too_large", f"{total} bytes, over the competition's {limits.max_bytes}")
    if CONFIG not in sizes:
        raise _reject("missing_config", f"no {CONFIG}")
    if sizes[CONFIG] > MAX_CONFIG_BYTES:
        raise _reject("too_large", f"{CONFIG} has {sizes[CONFIG]} bytes, over {MAX_CONFIG_BYTES}")
    if WEIGHTS not in sizes:
        raise _reject("missing_weights", f"no {WEIGHTS}")
    return sizes


def _is_int(v: Any, lo: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _is_pos(v: Any) -> bool:  # a finite number > 0 (and < 1e12, so even a huge int is safe)
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1e12


def _is_text(v: Any) -> bool:
    return v is None or (isinstance(v, str) and len(v) <= 256)


def _empty(v: Any) -> bool:
    return v is None or v is False or v == [] or v == {}


# Keys peft 0.21.2 writes for LoRA whose value is only informational: each with its valid values.
_FREE = {
    "task_type": lambda v: v in (None, "CAUSAL_LM"), "inference_mode": lambda v: isinstance(v, bool),
    "peft_version": _is_text, "base_model_name_or_path": _is_text, "revision": _is_text,
    "lora_dropout": lambda v: v == 0 or (_is_pos(v) and v < 1), "use_rslora": lambda v: isinstance(v, bool),
    "qalora_group_size": _is_int, "init_lora_weights": lambda v: v in (True, False, "gaussian"),
    "layers_pattern": lambda v: v in (None, "layers", ["layers"]), "use_dora": lambda v: isinstance(v, bool),
}
# Keys that must stay unset (None, False, [] or {}), with the reason when they are not.
_UNSET = {
    "auto_mapping": "remote_code", "megatron_config": "remote_code",
    "modules_to_save": "adds_trainable", "layer_replication": "adds_trainable",
    "target_parameters": "adds_trainable", "lora_bias": "adds_trainable",
    "trainable_token_indices": "replaces_embeddings", "ensure_weight_tying": "replaces_embeddings",
    **dict.fromkeys(("exclude_modules", "alora_invocation_tokens", "eva_config", "corda_config",
                     "lora_ga_config", "velora_config", "monteclora_config", "arrow_config",
                     "kasa_config", "use_bdlora", "loftq_config", "use_qalora", "fan_in_fan_out"),
                    "bad_config"),
}
_OTHER = {"peft_type", "r", "lora_alpha", "target_modules", "bias", "rank_pattern", "alpha_pattern",
          "layers_to_transform", "megatron_core"}
ALLOWED_CONFIG_KEYS = frozenset(_FREE) | frozenset(_UNSET) | _OTHER


def _read_config(path: Path, base: BaseSpec, limits: AdapterLimits) -> _Config:
    try:
        cfg = strict_json(path.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise _reject("bad_config", f"{CONFIG} is not valid JSON: {str(exc)[:80]}") from None
    if not isinstance(cfg, dict):
        raise _reject("bad_config", f"{CONFIG} is not a JSON object")
    for key in cfg:
        if "remote" in key.lower() or "trust" in key.lower():
            raise _reject("remote_code", f"{CONFIG} key {key[:60]!r} asks for remote code")
    if cfg.get("megatron_core") not in (None, "megatron.core"):
        raise _reject("remote_code", "megatron_core names a module to import")
    unknown = sorted(set(cfg) - ALLOWED_CONFIG_KEYS)
    if unknown:
        raise _reject("config_key_not_allowed", f"{CONFIG} keys not allowed: {unknown[:5]}")
    for key in ("peft_type", "r", "lora_alpha", "target_modules"):
        if key not in cfg:
            raise _reject("bad_config", f"{CONFIG} lacks {key!r}")
    dora = cfg.get("use_dora", False)
    kind = "dora" if dora is True else "lora"
    if cfg["peft_type"] != "LORA" or kind not in limits.types:
        raise _reject("adapter_type", f"{str(cfg['peft_type'])[:20]!r}/{kind} is not among {list(limits.types)}")
    for key, reason in _UNSET.items():
        value = cfg.get(key)
        if not _empty(value):
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
    for name, pattern, ok in (("rank_pattern", ranks, lambda v: _is_int(v, 1)),
                              ("alpha_pattern", alphas, _is_pos)):
        if not isinstance(pattern, dict) or not all(
            len(k) <= 128 and _PATTERN_KEY.fullmatch(k) and ok(v) for k, v in pattern.items()
        ):
            raise _reject("bad_config", f"{name} must map module names to positive numbers")
    r = cfg["r"]
    if not _is_int(r, 1) or not _is_pos(cfg["lora_alpha"]):
        raise _reject("bad_config", "r must be an integer >= 1 and lora_alpha a number > 0")
    if max([r, *ranks.values()]) > limits.max_rank:
        raise _reject("rank_over_limit", f"rank {max([r, *ranks.values()])} > {limits.max_rank}")
    layers = cfg.get("layers_to_transform")
    layers = list(range(base.num_layers)) if layers is None else [layers] if _is_int(layers) else layers
    if not isinstance(layers, list) or not layers or len(set(map(str, layers))) != len(layers) or not all(
        _is_int(i) and i < base.num_layers for i in layers
    ):
        raise _reject("bad_config", f"layers_to_transform must list layers below {base.num_layers}")
    return _Config(bool(dora), r, float(cfg["lora_alpha"]), bool(cfg.get("use_rslora", False)),
                   tuple(sorted(set(targets))), tuple(sorted(layers)), ranks, alphas)


def _module_key(base: BaseSpec, layer: int, module: str) -> str:
    """The module's name in the base model, as peft matches rank/alpha patterns against it."""
    return f"model.layers.{layer}.{base.modules[module][0]}.{module}"


def _group(header: Mapping[str, TensorInfo], config: _Config, base: BaseSpec,
           limits: AdapterLimits) -> dict[tuple[int, str], dict[str, TensorInfo]]:
    """Tensors by (layer, module) after checking every name against the base and the config."""
    groups: dict[tuple[int, str], dict[str, TensorInfo]] = {}
    for name, info in sorted(header.items()):
        if any(e in name for e in EMBEDDINGS):
            raise _reject("replaces_embeddings", f"tensor {name[:100]!r} replaces an embedding")
        m = _TENSOR.fullmatch(name)
        if m is None:
            raise _reject("unexpected_tensor", f"{name[:100]!r} is not a peft LoRA/DoRA tensor name")
        layer, parent, module, kind = int(m[1]), m[2], m[3], m[4]
        if layer >= base.num_layers or base.modules.get(module, ("",))[0] != parent:
            raise _reject("unexpected_tensor", f"{name}: the base has no such module")
        if module not in limits.target_modules:
            raise _reject("target_not_allowed", f"{name}: {module} is not among {list(limits.target_modules)}")
        if module not in config.targets or layer not in config.layers:
            raise _reject("unexpected_tensor", f"{name}: {CONFIG} does not target this module")
        if kind == "lora_magnitude_vector" and not config.dora:
            raise _reject("unexpected_tensor", f"{name}: a magnitude in a LoRA (not DoRA) adapter")
        groups.setdefault((layer, module), {})[kind] = info
    needed = ("lora_A.weight", "lora_B.weight") + (("lora_magnitude_vector",) if config.dora else ())
    for layer in config.layers:
        for module in config.targets:
            missing = [k for k in needed if k not in groups.get((layer, module), {})]
            if missing:
                raise _reject("missing_tensor", f"layers.{layer}.{module} lacks {missing}")
    return groups


def _check_shapes(groups: Mapping[tuple[int, str], Mapping[str, TensorInfo]], config: _Config,
                  base: BaseSpec, limits: AdapterLimits) -> None:
    for (layer, module), parts in sorted(groups.items()):
        where = f"layers.{layer}.{module}"
        a, b = parts["lora_A.weight"].shape, parts["lora_B.weight"].shape
        _, fan_in, fan_out = base.modules[module]
        if len(a) != 2 or len(b) != 2:
            raise _reject("shape_mismatch", f"{where}: lora_A {list(a)} and lora_B {list(b)} must be 2-D")
        if max(a[0], b[1]) > limits.max_rank:
            raise _reject("rank_over_limit", f"{where}: rank {max(a[0], b[1])} > {limits.max_rank}")
        if a[0] != b[1] or a[1] != fan_in or b[0] != fan_out:
            raise _reject("shape_mismatch", f"{where}: lora_A {list(a)}, lora_B {list(b)} do not fit "
                          f"({fan_in} in, {fan_out} out)")
        expected = config.rank(_module_key(base, layer, module))
        if a[0] != expected:
            raise _reject("rank_mismatch", f"{where}: tensor rank {a[0]}, {CONFIG} says {expected}")
        if "lora_magnitude_vector" in parts and parts["lora_magnitude_vector"].shape != (fan_out,):
            raise _reject("shape_mismatch", f"{where}: magnitude must have shape [{fan_out}]")


def _check_values(tensors: Mapping[str, Any], groups: Mapping[tuple[int, str], Any], config: _Config,
                  base: BaseSpec, bounds: NormBounds) -> dict[str, float]:
    import torch

    for name, t in sorted(tensors.items()):
        if not bool(torch.isfinite(t).all()):
            raise _reject("non_finite", f"{name} holds NaN or infinite values")
        if t.numel() and float(t.abs().max()) > bounds.max_abs_value:
            raise _reject("norm_too_large", f"{name} holds values over {bounds.max_abs_value}")
    norms: dict[str, float] = {}
    for layer, module in sorted(groups):
        where, key = f"layers.{layer}.{module}", _module_key(base, layer, module)
        prefix = f"base_model.model.{key}"
        a, b = tensors[f"{prefix}.lora_A.weight"].double(), tensors[f"{prefix}.lora_B.weight"].double()
        # ‖s·B·A‖_F² = s²·trace((BᵀB)(AAᵀ)): two r×r products instead of the out×in delta.
        square = float(((b.T @ b) * (a @ a.T)).sum())
        norms[where] = config.scale(key) * math.sqrt(max(square, 0.0))
        w = (base.weight_norms or {}).get(where)
        limit = bounds.max_delta_norm if w is None else bounds.max_relative_delta * w[0]
        if norms[where] > limit:
            raise _reject("norm_too_large", f"{where}: ‖s·B·A‖_F = {norms[where]:.4g} > {limit:.4g}")
        if config.dora:
            m = tensors[f"{prefix}.lora_magnitude_vector"].double()
            if not bool((m > 0).all()):
                raise _reject("bad_magnitude", f"{where}: DoRA magnitudes must be positive")
            limit = bounds.max_magnitude if w is None else bounds.max_relative_magnitude * w[1]
            if float(m.max()) > limit:
                raise _reject("norm_too_large", f"{where}: DoRA magnitude {float(m.max()):.4g} > {limit:.4g}")
    return norms


def check_adapter(folder: str | Path, base: BaseSpec, limits: AdapterLimits, *,
                  expected_hash: str | None = None, bounds: NormBounds = NormBounds()) -> CheckedAdapter:
    """Check an adapter folder before any tensor of it reaches a model; raise AdapterRejected."""
    folder = Path(folder)
    sizes = _check_files(folder, limits)
    digest = content_hash(folder, sizes)
    if expected_hash is not None and digest != expected_hash.lower():
        raise _reject("hash_mismatch", f"content hash {digest[:16]}… is not the committed {expected_hash[:16]}…")
    config = _read_config(folder / CONFIG, base, limits)
    try:
        header, _ = read_header(folder / WEIGHTS)
    except HeaderError as exc:
        raise _reject(exc.reason, f"{WEIGHTS}: {exc}") from None
    groups = _group(header, config, base, limits)
    _check_shapes(groups, config, base, limits)
    try:
        tensors = load_checked(folder / WEIGHTS, header)
    except HeaderError as exc:
        raise _reject(exc.reason, f"{WEIGHTS}: {exc}") from None
    norms = _check_values(tensors, groups, config, base, bounds)
    return CheckedAdapter(
        adapter_type="dora" if config.dora else "lora", rank=config.r, target_modules=config.targets,
        n_params=sum(info.numel for info in header.values()), n_bytes=sum(sizes.values()),
        dtypes=tuple(sorted({info.dtype for info in header.values()})), delta_norms=norms,
        content_hash=digest, files=tuple(sorted(sizes)),
    )
