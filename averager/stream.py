"""Streaming merges over a Hugging Face model directory of safetensors shards, written atomically.

The exact merge reads one tensor at a time (``cortex.model.shards``: plain reads at the offsets in
each shard's header, no memory map), folds the adapters into an fp32 master of that tensor and writes
it straight into the output shard, whose header is written first from the known shapes: peak memory
is about one tensor plus the adapters, whatever the model size (``merge_peak_bytes``, logged before
the merge). The rank-r merge writes a peft LoRA adapter directory.

Output appears whole or not at all (``cortex.atomic.atomic_dir``). Each merge returns a typed
:class:`~cortex.protocol.rounds.MergeReport` and writes no manifest: the averager's round puts the
published base's ``Manifest`` into the folder (``averager.publish``), ``cortex merge`` the report.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from safetensors.torch import save_file
from tqdm import tqdm

from averager.merge import BaseTransform, merge_weight, rank_r_delta, weight_warnings
from cortex.adapter import LORA_A, LORA_B, NO_NORM_BOUNDS, PICKLE_SUFFIXES, WEIGHTS_FILE, Adapter, BaseSpec, Term
from cortex.adapter import group_terms, load_adapter, own_limits, tensor_name
from cortex.atomic import atomic_dir, refuse_existing, write_json
from cortex.errors import CortexError
from cortex.model.shards import DTYPES, INDEX_FILE, ShardTensor, layout, read_tensor, weight_map, write_shard
from cortex.protocol.hashing import content_hash
from cortex.protocol.rounds import MergeInput, MergeReport

log = logging.getLogger(__name__)

PAUSE_ENV = "CORTEX_MERGE_PAUSE_S"  # seconds to sleep before each tensor (tests kill a merge halfway)
OUT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "same": None}
Layout = dict[str, list[ShardTensor]]


def model_layout(base: Path) -> Layout:
    """The base's shards and tensors (``cortex.model.shards.layout``); a quantised checkpoint is refused."""
    config = base / "config.json"
    if config.is_file() and json.loads(config.read_text()).get("quantization_config"):
        raise CortexError(f"{base}: a quantised checkpoint; merge against the unquantised base and pass "
                          "a dequantising transform (see docs/merging.md)")
    return layout(base)


def merge_peak_bytes(layout: Layout, adapter_bytes: int, targeted: set[str],
                     out_dtype: torch.dtype | None = torch.float32) -> int:
    """An upper bound on ``merge_exact``'s tensor memory, from the shard headers alone (no weight read).

    The adapters' factors are held throughout (``adapter_bytes``); one tensor is in flight at a time:
    its read buffer, the fp32 master and, for a targeted weight (``targeted``: tensor names), the
    scaled copy and the ``addmm`` result, then the cast output.
    """
    peak = 0
    for info in (i for items in layout.values() for i in items):
        n = math.prod(info.shape)
        source = info.end - info.start
        out = n * torch.empty((), dtype=out_dtype or DTYPES[info.dtype]).element_size()
        masters = (3 if info.name in targeted else 1) * 4 * n
        peak = max(peak, source + masters + out)
    return adapter_bytes + peak


def check_fit(layout: Layout, modules: dict[str, list[Term]]) -> None:
    """Refuse before writing anything unless every targeted module is a 2-D float weight its factors fit."""
    infos = {i.name: i for items in layout.values() for i in items}
    for module, terms in modules.items():
        info = infos.get(f"{module}.weight")
        if info is None:
            raise CortexError(f"the base has no {module}.weight that the adapters target; is it the base "
                              "they were trained on?")
        fits = all(f.A.shape[1:] == info.shape[1:] and f.B.shape[0] == info.shape[0] for _, f in terms)
        if len(info.shape) != 2 or not DTYPES[info.dtype].is_floating_point or not fits:
            raise CortexError(f"{module}.weight is {info.dtype}{list(info.shape)} in the base, which the "
                              "adapters' factors do not fit; is it the base they were trained on?")


def _inputs(weighted: Sequence[tuple[Adapter, float]]) -> list[MergeInput]:
    """The report's inputs; logs the weight warnings."""
    for note in weight_warnings([w for _, w in weighted], any(a.use_dora for a, _ in weighted)):
        log.warning(note)
    return [MergeInput(str(a.path), float(w), a.use_dora, a.checked.rank, len(a.modules), a.checked.content_hash)
            for a, w in weighted]


def merge_exact(base: str | Path, weighted: Sequence[tuple[Adapter, float]], out: str | Path, *,
                dtype: str = "float32", transform: BaseTransform | None = None, progress: bool = True) -> MergeReport:
    """Stream the exact merge of ``weighted`` adapters into ``base``; write a model directory at ``out``.

    Every floating tensor passes through an fp32 master (after ``transform``, the hook for merging
    against a dequantised base) and is written as ``dtype`` (``same``: the base's own dtype).
    """
    base, out = Path(base), Path(out)
    refuse_existing(out)
    inputs, modules, shards = _inputs(weighted), group_terms(weighted), model_layout(base)
    check_fit(shards, modules)
    target = OUT_DTYPES[dtype]
    factors = sum(t.numel() * t.element_size() for terms in modules.values() for _, f in terms for t in (f.A, f.B))
    targeted = {f"{m}.weight" for m in modules}
    log.info("merging %d adapters into %s: at most %.2f GiB of tensors in memory", len(weighted), base,
             merge_peak_bytes(shards, factors, targeted, target) / 2**30)
    bar = tqdm(total=sum(map(len, shards.values())), desc="merge", unit="tensor", disable=not progress)
    with atomic_dir(out) as tmp, bar:
        total_size = 0
        for shard, infos in shards.items():
            with open(base / shard, "rb") as handle:
                produce = _producer(handle, infos, modules, target, transform, bar.update)
                specs = [(i.name, _out_dtype(i, target), i.shape) for i in infos]
                total_size += write_shard(tmp / shard, specs, produce, {"format": "pt"})
        copy_side_files(base, tmp, shards, dtype)
        if weight_map(base) is not None:
            index = json.loads((base / INDEX_FILE).read_text())
            index["metadata"] = dict(index.get("metadata") or {}, total_size=total_size)
            write_json(tmp / INDEX_FILE, index, indent=2)
        digest = content_hash(tmp)
    return MergeReport("exact", str(base), inputs, len(modules), digest, dtype=dtype)


def _producer(handle: Any, infos: list[ShardTensor], modules: dict[str, list[Term]], target: torch.dtype | None,
              transform: BaseTransform | None, done: Callable[[], Any]) -> Callable[[str], torch.Tensor]:
    """``produce(name)`` for ``write_shard``: read, upcast to the fp32 master, transform, merge, cast."""
    by_name = {i.name: i for i in infos}
    pause = float(os.environ.get(PAUSE_ENV) or 0)  # a test hook: time to kill a merge halfway

    def produce(name: str) -> torch.Tensor:
        if pause:
            time.sleep(pause)
        tensor = read_tensor(handle, by_name[name])
        terms = modules.get(name.removesuffix(".weight")) if name.endswith(".weight") else None
        if tensor.is_floating_point() and (target is not None or transform or terms):
            master = tensor.float()
            if transform is not None:
                master = transform(name, master)
            if terms:
                master = merge_weight(master, terms)
                if not math.isfinite(float(master.sum())):  # NaN and ±inf reach the sum
                    raise CortexError(f"{name}: the merge produced NaN or infinite values")
            tensor = master.to(target or tensor.dtype)
        done()
        return tensor

    return produce


def _out_dtype(info: ShardTensor, target: torch.dtype | None) -> torch.dtype:
    source = DTYPES[info.dtype]
    return target if target is not None and source.is_floating_point else source


def copy_side_files(base: Path, tmp: Path, layout: Layout, dtype: str) -> None:
    """Copy config, tokenizer and other top-level files; set the config's dtype; skip pickles."""
    for src in sorted(base.iterdir()):
        if src.name in layout or src.name == INDEX_FILE or src.name.startswith("."):
            continue
        if not src.is_file() or src.name.lower().endswith(PICKLE_SUFFIXES):
            log.warning("not copying %s (%s)", src.name, "pickle" if src.is_file() else "not a file")
            continue
        if src.name == "config.json" and dtype != "same":
            config = json.loads(src.read_text())
            config["dtype"] = dtype  # transformers ≥ 4.56; older ones read torch_dtype
            if "torch_dtype" in config:
                config["torch_dtype"] = dtype
            write_json(tmp / src.name, config, indent=2)
        else:
            shutil.copyfile(src, tmp / src.name)


def merge_rank_r(base: str | Path, weighted: Sequence[tuple[Adapter, float]], out: str | Path, rank: int,
                 *, transform: BaseTransform | None = None, progress: bool = True) -> MergeReport:
    """Write a rank-``rank`` peft LoRA adapter (``lora_alpha = r``, scaling 1) of the exact merged delta.

    Base tensors are read (one at a time) only for modules with DoRA terms. The report's
    ``energy`` maps each module to the fraction of its delta's energy (Σσ²) kept. The adapter is a
    plain one, as peft writes it: short ``target_modules`` over the layers the inputs touch, with zero
    factors (ΔW = 0, exact) where no input targets a module, so ``cortex.adapter.check_adapter`` passes it.
    """
    from peft import LoraConfig  # only this path needs peft

    base, out = Path(base), Path(out)
    if rank < 1:
        raise CortexError(f"--rank must be a positive integer, got {rank}")
    refuse_existing(out)
    inputs = _inputs(weighted)
    modules = group_terms(weighted)
    shards = model_layout(base)
    check_fit(shards, modules)
    where = {i.name: (shard, i) for shard, infos in shards.items() for i in infos}
    tensors, energy = {}, {}
    for module, terms in tqdm(modules.items(), desc="rank-r", unit="module", disable=not progress):
        W = None
        if any(f.is_dora for _, f in terms):
            shard, info = where[f"{module}.weight"]
            with open(base / shard, "rb") as handle:
                W = read_tensor(handle, info).float()
            W = transform(f"{module}.weight", W) if transform is not None else W
        B, A, energy[module] = rank_r_delta(W, terms, rank)
        tensors[tensor_name(module, LORA_A)] = A.contiguous()
        tensors[tensor_name(module, LORA_B)] = B.contiguous()
    names, layers = _fill_zeros(tensors, modules, where, rank)
    with atomic_dir(out) as tmp:
        config = LoraConfig(r=rank, lora_alpha=rank, target_modules=names, layers_to_transform=layers,
                            base_model_name_or_path=str(base))
        config.save_pretrained(str(tmp))
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        digest = content_hash(tmp)
    return MergeReport("rank-r", str(base), inputs, len(modules), digest, rank=rank, energy=energy)


def _fill_zeros(tensors: dict[str, torch.Tensor], modules: dict[str, Any], where: dict[str, Any],
                rank: int) -> tuple[list[str], list[int] | None]:
    """Zero factors for every (layer, module name) the inputs leave out, over the layers they touch:
    the short ``target_modules`` and ``layers_to_transform`` (None: every layer) of the rank-r adapter."""
    parts = {tuple(m.split(".")): m for m in modules}  # ('model', 'layers', i, parent, name)
    names = sorted({p[-1] for p in parts})
    touched = sorted({int(p[2]) for p in parts})
    every = sorted({int(n.split(".")[2]) for n in where if n.startswith("model.layers.")})
    parent = {p[-1]: p[3] for p in parts}
    for layer in touched:
        for name in names:
            key = f"model.layers.{layer}.{parent[name]}.{name}"
            if key in modules:
                continue
            if f"{key}.weight" not in where:
                raise CortexError(f"the base has no {key}.weight for the rank-r adapter's zero factors")
            out, inp = where[f"{key}.weight"][1].shape
            tensors[tensor_name(key, LORA_A)] = torch.zeros(rank, inp)
            tensors[tensor_name(key, LORA_B)] = torch.zeros(out, rank)
    return names, None if touched == every else touched


def load_rank_r(out: str | Path, spec: BaseSpec, rank: int) -> Adapter:
    """The adapter :func:`merge_rank_r` wrote at ``out``, through the checked loader, for folding into the base."""
    return load_adapter(Path(out), spec, own_limits(spec, rank), bounds=NO_NORM_BOUNDS)
