"""What an adapter must fit: the base's target modules and shapes (``BaseSpec``) and value bounds.

A ``BaseSpec`` is read from a ``transformers`` config (shapes only) or from the base's weights
(also the norms that bound an adapter's update relative to the weight it changes). The target
modules come from the architecture's map in ``cortex.adapter.names``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cortex.adapter.names import module_key, target_modules

if TYPE_CHECKING:
    from cortex.protocol.competition import AdapterLimits


@dataclass(frozen=True)
class BaseSpec:
    """Each target module's (parent, in_features, out_features), the layer count, and optionally the
    base weights' norms by ``"layers.{i}.{name}"``: (‖W‖_F, largest row norm)."""

    num_layers: int
    modules: Mapping[str, tuple[str, int, int]]
    weight_norms: Mapping[str, tuple[float, float]] | None = None

    @classmethod
    def from_config(cls, config: Any) -> BaseSpec:
        """From a Llama/Mistral/Qwen2 ``transformers`` config, without building the model."""
        parents = target_modules(getattr(config, "model_type", "llama"))
        hidden, inter = config.hidden_size, config.intermediate_size
        heads = config.num_attention_heads
        kv = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or hidden // heads
        q, k = heads * head_dim, kv * head_dim
        features = {"q_proj": (hidden, q), "k_proj": (hidden, k), "v_proj": (hidden, k),
                    "o_proj": (q, hidden), "gate_proj": (hidden, inter), "up_proj": (hidden, inter),
                    "down_proj": (inter, hidden)}
        mods = {name: (parent, *features[name]) for name, parent in parents.items()}
        return cls(int(config.num_hidden_layers), mods)

    def key(self, layer: int, module: str) -> str:
        """The module's name in the base model: ``model.layers.{layer}.{parent}.{module}``."""
        return module_key(layer, self.modules[module][0], module)

    @classmethod
    def from_model(cls, model: Any) -> BaseSpec:
        """From a loaded causal LM, with its weight norms (for relative norm bounds)."""
        import torch

        spec, norms = cls.from_config(model.config), {}
        with torch.no_grad():
            for i in range(spec.num_layers):
                for name in spec.modules:
                    w = model.get_submodule(spec.key(i, name)).weight.double()
                    norms[f"layers.{i}.{name}"] = (float(w.norm()), float(w.norm(dim=1).max()))
        return cls(spec.num_layers, spec.modules, norms)

    @classmethod
    def from_files(cls, base_dir: Path, norms: bool = True) -> BaseSpec:
        """The same as :meth:`from_model`, read from a model folder's config and safetensors (each shard
        opened once, one tensor at a time) without building the model; ``norms=False`` reads the config
        only (for :data:`NO_NORM_BOUNDS`, which never looks at them)."""
        import torch
        from safetensors import safe_open
        from transformers import AutoConfig

        from cortex.model.shards import shard_of, weight_map  # cortex.model imports this package

        base_dir = Path(base_dir)
        spec = cls.from_config(AutoConfig.from_pretrained(base_dir, trust_remote_code=False, local_files_only=True))
        if not norms:
            return spec
        names = {f"layers.{i}.{name}": f"{spec.key(i, name)}.weight"
                 for i in range(spec.num_layers) for name in spec.modules}
        where = weight_map(base_dir)
        by_shard: dict[str, list[str]] = {}
        for key, tensor in names.items():
            by_shard.setdefault(shard_of(where, tensor), []).append(key)
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


# For adapters nobody competes with (a hand merge's inputs, the averager's own rank-r delta): values
# must still be finite, but their size is the operator's choice, not a hostile miner's.
NO_NORM_BOUNDS = NormBounds(max_abs_value=math.inf, max_delta_norm=math.inf, max_relative_delta=math.inf,
                            max_magnitude=math.inf, max_relative_magnitude=math.inf)


def own_limits(spec: BaseSpec, max_rank: int | None = None) -> AdapterLimits:
    """Limits for adapters nobody competes with (with :data:`NO_NORM_BOUNDS`): both types, every module
    the base has, any rank up to its widest module, no size limit that matters. The checks still
    refuse anything peft-unlike or non-finite."""
    from cortex.protocol.competition import AdapterLimits

    widest = max(max(i, o) for _, i, o in spec.modules.values())
    return AdapterLimits(("lora", "dora"), max_rank or widest, tuple(spec.modules), max_bytes=1 << 50)
