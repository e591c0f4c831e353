"""A checked adapter as factors per module, for merging: ``ΔW = scale · B @ A`` (DoRA: plus a magnitude).

``load_adapter`` is the only way an adapter's tensors become factors: it runs every check of
``cortex.adapter.checks`` (the same ones a validator runs, with the same ``AdapterRejected`` reason
codes) and builds the factors from the tensors those checks loaded, in fp32, with each module's
scale from the one config policy (``AdapterConfig.scale``). Modules are named as in the base
model (``model.layers.0.self_attn.q_proj``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from cortex.adapter.checks import CheckedAdapter, inspect_adapter
from cortex.adapter.names import LORA_A, LORA_B, MAGNITUDE, tensor_name
from cortex.adapter.spec import BaseSpec, NormBounds

if TYPE_CHECKING:
    from torch import Tensor

    from cortex.protocol.competition import AdapterLimits


@dataclass(frozen=True)
class LowRank:
    """One adapter's factors for one module: ``ΔW = scale · B @ A``, DoRA when ``magnitude`` is set."""

    A: Tensor  # (r, in)
    B: Tensor  # (out, r)
    scale: float
    magnitude: Tensor | None = None  # (out,)

    @property
    def rank(self) -> int:
        return int(self.A.shape[0])

    @property
    def is_dora(self) -> bool:
        return self.magnitude is not None


Term = tuple[float, LowRank]  # (merge weight, factors)


@dataclass(frozen=True)
class Adapter:
    """A checked adapter: its factors per module (``model.layers.0.self_attn.q_proj`` → LowRank)."""

    path: Path
    checked: CheckedAdapter
    modules: dict[str, LowRank]

    @property
    def use_dora(self) -> bool:
        return self.checked.adapter_type == "dora"


def load_adapter(folder: str | Path, base: BaseSpec, limits: AdapterLimits, *, expected_hash: str | None = None,
                 bounds: NormBounds = NormBounds()) -> Adapter:
    """Check ``folder`` exactly as a validator does (raise AdapterRejected), then return its fp32 factors."""
    seen = inspect_adapter(folder, base, limits, expected_hash=expected_hash, bounds=bounds)
    modules = {}
    for layer in seen.config.layers:
        for module in seen.config.targets:
            key = base.key(layer, module)
            mag = seen.tensors[tensor_name(key, MAGNITUDE)].float() if seen.config.dora else None
            modules[key] = LowRank(A=seen.tensors[tensor_name(key, LORA_A)].float(),
                                   B=seen.tensors[tensor_name(key, LORA_B)].float(),
                                   scale=seen.config.scale(key), magnitude=mag)
    return Adapter(Path(folder), seen.checked, dict(sorted(modules.items())))


def group_terms(weighted: Sequence[tuple[Adapter, float]]) -> dict[str, list[Term]]:
    """Module name → [(weight, factors), …] over every adapter that targets it, in input order."""
    modules: dict[str, list[Term]] = {}
    for adapter, weight in weighted:
        for module, factors in adapter.modules.items():
            modules.setdefault(module, []).append((float(weight), factors))
    return dict(sorted(modules.items()))
