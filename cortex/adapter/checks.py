"""Adapter checks: a submitted peft LoRA/DoRA folder is untrusted input (DESIGN.md §9).

``check_adapter`` passes a folder only if every file, every ``adapter_config.json`` key and every
tensor is what an honest ``peft`` LoRA/DoRA of the competition's base would hold; otherwise it raises
:class:`AdapterRejected` with a short, stable ``reason`` (docs/adapter-checks.md lists them). The order
is cheapest and safest first: file names and sizes (from ``stat``), the content hash, the config,
the safetensors header (parsed here, never unpickled), names and shapes against the base, and only
then the tensor values (loaded by ``safetensors``): finite, bounded, norms bounded.

The validator, the miner's pre-publish check and the averager all call it; the averager's loader of
factors (``cortex.adapter.factors.load_adapter``) runs exactly these checks and builds its factors
from the tensors they loaded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cortex.adapter.errors import AdapterRejected
from cortex.adapter.files import CONFIG_FILE, WEIGHTS_FILE, check_folder
from cortex.adapter.header import HeaderError, TensorInfo, load_checked, read_header
from cortex.adapter.names import EMBEDDINGS, LORA_A, LORA_B, MAGNITUDE, parse_tensor_name, tensor_name
from cortex.adapter.policy import AdapterConfig, read_config
from cortex.adapter.spec import BaseSpec, NormBounds
from cortex.protocol.hashing import content_hash

if TYPE_CHECKING:
    from cortex.protocol.competition import AdapterLimits


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
    base_revision: str | None = None  # the base revision its config names, if any


def _reject(reason: str, message: str) -> AdapterRejected:
    return AdapterRejected(reason, message)


def _group(header: Mapping[str, TensorInfo], config: AdapterConfig, base: BaseSpec,
           limits: AdapterLimits) -> dict[tuple[int, str], dict[str, TensorInfo]]:
    """Tensors by (layer, module) after checking every name against the base and the config."""
    groups: dict[tuple[int, str], dict[str, TensorInfo]] = {}
    for name, info in sorted(header.items()):
        if any(e in name for e in EMBEDDINGS):
            raise _reject("replaces_embeddings", f"tensor {name[:100]!r} replaces an embedding")
        parsed = parse_tensor_name(name)
        if parsed is None:
            raise _reject("unexpected_tensor", f"{name[:100]!r} is not a peft LoRA/DoRA tensor name")
        layer, parent, module, kind = parsed
        if layer >= base.num_layers or base.modules.get(module, ("",))[0] != parent:
            raise _reject("unexpected_tensor", f"{name}: the base has no such module")
        if module not in limits.target_modules:
            raise _reject("target_not_allowed", f"{name}: {module} is not among {list(limits.target_modules)}")
        if module not in config.targets or layer not in config.layers:
            raise _reject("unexpected_tensor", f"{name}: {CONFIG_FILE} does not target this module")
        if kind == MAGNITUDE and not config.dora:
            raise _reject("unexpected_tensor", f"{name}: a magnitude in a LoRA (not DoRA) adapter")
        groups.setdefault((layer, module), {})[kind] = info
    needed = (LORA_A, LORA_B) + ((MAGNITUDE,) if config.dora else ())
    for layer in config.layers:
        for module in config.targets:
            missing = [k for k in needed if k not in groups.get((layer, module), {})]
            if missing:
                raise _reject("missing_tensor", f"layers.{layer}.{module} lacks {missing}")
    return groups


def _check_shapes(groups: Mapping[tuple[int, str], Mapping[str, TensorInfo]], config: AdapterConfig,
                  base: BaseSpec, limits: AdapterLimits) -> None:
    for (layer, module), parts in sorted(groups.items()):
        where = f"layers.{layer}.{module}"
        a, b = parts[LORA_A].shape, parts[LORA_B].shape
        _, fan_in, fan_out = base.modules[module]
        if len(a) != 2 or len(b) != 2:
            raise _reject("shape_mismatch", f"{where}: lora_A {list(a)} and lora_B {list(b)} must be 2-D")
        if max(a[0], b[1]) > limits.max_rank:
            raise _reject("rank_over_limit", f"{where}: rank {max(a[0], b[1])} > {limits.max_rank}")
        if a[0] != b[1] or a[1] != fan_in or b[0] != fan_out:
            raise _reject("shape_mismatch", f"{where}: lora_A {list(a)}, lora_B {list(b)} do not fit "
                          f"({fan_in} in, {fan_out} out)")
        expected = config.rank(base.key(layer, module))
        if a[0] != expected:
            raise _reject("rank_mismatch", f"{where}: tensor rank {a[0]}, {CONFIG_FILE} says {expected}")
        if MAGNITUDE in parts and parts[MAGNITUDE].shape != (fan_out,):
            raise _reject("shape_mismatch", f"{where}: magnitude must have shape [{fan_out}]")


def _check_values(tensors: Mapping[str, Any], groups: Mapping[tuple[int, str], Any], config: AdapterConfig,
                  base: BaseSpec, bounds: NormBounds) -> dict[str, float]:
    import torch

    for name, t in sorted(tensors.items()):
        if not bool(torch.isfinite(t).all()):
            raise _reject("non_finite", f"{name} holds NaN or infinite values")
        if t.numel() and float(t.abs().max()) > bounds.max_abs_value:
            raise _reject("norm_too_large", f"{name} holds values over {bounds.max_abs_value}")
    norms: dict[str, float] = {}
    for layer, module in sorted(groups):
        where, key = f"layers.{layer}.{module}", base.key(layer, module)
        a, b = tensors[tensor_name(key, LORA_A)].double(), tensors[tensor_name(key, LORA_B)].double()
        # ‖s·B·A‖_F² = s²·trace((BᵀB)(AAᵀ)): two r×r products instead of the out×in delta.
        square = float(((b.T @ b) * (a @ a.T)).sum())
        norms[where] = config.scale(key) * math.sqrt(max(square, 0.0))
        w = (base.weight_norms or {}).get(where)
        limit = bounds.max_delta_norm if w is None else bounds.max_relative_delta * w[0]
        if norms[where] > limit:
            raise _reject("norm_too_large", f"{where}: ‖s·B·A‖_F = {norms[where]:.4g} > {limit:.4g}")
        if config.dora:
            m = tensors[tensor_name(key, MAGNITUDE)].double()
            if not bool((m > 0).all()):
                raise _reject("bad_magnitude", f"{where}: DoRA magnitudes must be positive")
            limit = bounds.max_magnitude if w is None else bounds.max_relative_magnitude * w[1]
            if float(m.max()) > limit:
                raise _reject("norm_too_large", f"{where}: DoRA magnitude {float(m.max()):.4g} > {limit:.4g}")
    return norms


@dataclass(frozen=True)
class Inspected:
    """A folder that passed every check, with its config and the tensors the checks loaded."""

    checked: CheckedAdapter
    config: AdapterConfig
    tensors: Mapping[str, Any]  # name → torch.Tensor, exactly as the header declared


def inspect_adapter(folder: str | Path, base: BaseSpec, limits: AdapterLimits, *,
                    expected_hash: str | None = None, bounds: NormBounds = NormBounds()) -> Inspected:
    """Run every check on ``folder``; raise AdapterRejected, or return what passed and its tensors."""
    folder = Path(folder)
    sizes = check_folder(folder, limits.max_bytes)
    digest = content_hash(folder, sizes)
    if expected_hash is not None and digest != expected_hash.lower():
        raise _reject("hash_mismatch", f"content hash {digest[:16]}… is not the committed {expected_hash[:16]}…")
    config = read_config(folder / CONFIG_FILE, base, limits)
    try:
        header, _ = read_header(folder / WEIGHTS_FILE)
    except HeaderError as exc:
        raise _reject(exc.reason, f"{WEIGHTS_FILE}: {exc}") from None
    groups = _group(header, config, base, limits)
    _check_shapes(groups, config, base, limits)
    try:
        tensors = load_checked(folder / WEIGHTS_FILE, header)
    except HeaderError as exc:
        raise _reject(exc.reason, f"{WEIGHTS_FILE}: {exc}") from None
    norms = _check_values(tensors, groups, config, base, bounds)
    checked = CheckedAdapter(
        adapter_type=config.adapter_type, rank=config.r, target_modules=config.targets,
        n_params=sum(info.numel for info in header.values()), n_bytes=sum(sizes.values()),
        dtypes=tuple(sorted({info.dtype for info in header.values()})), delta_norms=norms,
        content_hash=digest, files=tuple(sorted(sizes)), base_revision=config.revision,
    )
    return Inspected(checked, config, tensors)


def check_adapter(folder: str | Path, base: BaseSpec, limits: AdapterLimits, *,
                  expected_hash: str | None = None, bounds: NormBounds = NormBounds()) -> CheckedAdapter:
    """Check an adapter folder before any tensor of it reaches a model; raise AdapterRejected."""
    return inspect_adapter(folder, base, limits, expected_hash=expected_hash, bounds=bounds).checked


def check_base_revision(checked: CheckedAdapter, revision: str) -> None:
    """Raise ``AdapterRejected('stale_base')`` when the adapter names a base revision other than ``revision``.

    An adapter's delta was trained on one base; applied to another (after the averager merged a new
    one) it is a different model. One that names no revision is taken as trained on the current base.
    """
    if checked.base_revision not in (None, revision):
        raise _reject("stale_base", f"trained on base revision {str(checked.base_revision)[:12]}, "
                                    f"not the current {revision[:12]}")
