"""Streaming merges over a Hugging Face model directory of safetensors shards, written atomically.

The exact merge reads one tensor at a time (plain reads at the offsets in each shard's header, no
memory map), folds the adapters into an fp32 master of that tensor and writes it straight into the
output shard, whose header is written first from the known shapes: peak memory is about one tensor
plus the adapters, whatever the model size. The rank-r merge writes a peft LoRA adapter directory.

Output goes into a hidden ``.<name>.partial-*`` folder beside ``out`` that is renamed onto ``out``
with ``os.replace`` only when complete, so a failed or killed merge never leaves a half-written
model under ``out`` (a leftover partial folder from a killed run is removed by the next run).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from safetensors.torch import save_file
from tqdm import tqdm

from averager.merge import BaseTransform, merge_weight, rank_r_delta, weight_warnings
from cortex.adapter import (
    CONFIG_FILE,
    HeaderError,
    LORA_A,
    LORA_B,
    NO_NORM_BOUNDS,
    PICKLE_SUFFIXES,
    WEIGHTS_FILE,
    Adapter,
    BaseSpec,
    Term,
    group_terms,
    load_adapter,
    own_limits,
    tensor_name,
)
from cortex.adapter import read_header as strict_header
from cortex.errors import CortexError
from cortex.protocol.hashing import content_hash

log = logging.getLogger(__name__)

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
          "U8": torch.uint8, "BOOL": torch.bool}
CODES = {v: k for k, v in DTYPES.items()}
PAUSE_ENV = "CORTEX_MERGE_PAUSE_S"  # seconds to sleep before each tensor (tests kill a merge halfway)
OUT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "same": None}


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lies in a shard: absolute byte range, dtype code and shape."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


def read_header(path: Path) -> tuple[list[TensorInfo], dict[str, str]]:
    """A safetensors file's tensors (in file order, absolute byte offsets) and its ``__metadata__``,
    through the one strict header reader (``cortex.adapter.header``)."""
    try:
        tensors, meta = strict_header(path, allowed=tuple(DTYPES))
    except HeaderError as exc:
        raise CortexError(f"{path}: {exc}; the merge reads only well-formed safetensors "
                          f"of {', '.join(DTYPES)}") from None
    # the checked tensors cover the data section exactly, so it starts where their bytes end before EOF
    data_start = path.stat().st_size - max((t.end for t in tensors.values()), default=0)
    infos = [TensorInfo(name, t.dtype, t.shape, data_start + t.begin, data_start + t.end)
             for name, t in tensors.items()]
    return sorted(infos, key=lambda i: i.start), meta


def read_tensor(handle: Any, info: TensorInfo) -> torch.Tensor:
    """Read one tensor with a plain read (a fresh, writable buffer)."""
    buf = bytearray(info.end - info.start)
    handle.seek(info.start)
    if handle.readinto(buf) != len(buf):
        raise CortexError(f"{handle.name}: truncated at tensor {info.name}")
    if not buf:
        return torch.empty(info.shape, dtype=DTYPES[info.dtype])
    return torch.frombuffer(buf, dtype=DTYPES[info.dtype]).reshape(info.shape)


def write_shard(path: Path, specs: Sequence[tuple[str, torch.dtype, tuple[int, ...]]],
                produce: Callable[[str], torch.Tensor], metadata: dict[str, str]) -> int:
    """Write a safetensors file tensor by tensor: header from ``specs`` first, then ``produce(name)``."""
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for name, dtype, shape in specs:
        size = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
        header[name] = {"dtype": CODES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(blob)) + blob)
        for name, dtype, shape in specs:
            tensor = produce(name)
            if tensor.dtype != dtype or tuple(tensor.shape) != tuple(shape):
                raise RuntimeError(f"{name}: produced {tensor.dtype}{tuple(tensor.shape)}, header says "
                                   f"{dtype}{tuple(shape)}")
            if tensor.numel():
                handle.write(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().data)
    return offset


def model_layout(base: Path) -> dict[str, list[TensorInfo]]:
    """Shard file name → its tensors, from the index (checked against each shard's header) or the single file."""
    if (base / "config.json").is_file() and json.loads((base / "config.json").read_text()).get(
            "quantization_config"):
        raise CortexError(f"{base}: a quantised checkpoint; merge against the unquantised base and pass "
                          "a dequantising transform (see docs/merging.md)")
    if (base / INDEX_FILE).is_file():
        weight_map = json.loads((base / INDEX_FILE).read_text())["weight_map"]
        shards = sorted(set(weight_map.values()))
    elif (base / SINGLE_FILE).is_file():
        weight_map, shards = None, [SINGLE_FILE]
    else:
        raise CortexError(f"{base}: no {SINGLE_FILE} or {INDEX_FILE}; pass a Hugging Face model "
                          "directory saved with safetensors (pickled weights are never loaded)")
    layout = {}
    for shard in shards:
        if not (base / shard).is_file():
            raise CortexError(f"{base}: shard {shard} named in the index is missing")
        layout[shard] = read_header(base / shard)[0]
        if weight_map is not None:
            listed = {k for k, v in weight_map.items() if v == shard}
            if listed != {i.name for i in layout[shard]}:
                raise CortexError(f"{base}: {shard} does not hold the tensors the index lists for it")
    return layout


def merge_peak_bytes(layout: dict[str, list[TensorInfo]], adapter_bytes: int, targeted: set[str],
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


def check_fit(layout: dict[str, list[TensorInfo]], modules: dict[str, list[Term]]) -> None:
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


@contextlib.contextmanager
def atomic_dir(out: Path) -> Iterator[Path]:
    """Yield a hidden temporary folder beside ``out``; rename it onto ``out`` only if the block succeeds."""
    refuse_existing(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.partial-*"):
        log.warning("removing %s left by an interrupted merge", stale)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
        os.replace(tmp, out)
        _fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def refuse_existing(out: Path) -> None:
    """Refuse before any work when ``out`` exists: a merge never overwrites."""
    if out.exists():
        raise CortexError(f"{out} already exists; choose a new --out or remove it")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with open(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def finish(tmp: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Fsync and hash every file written so far, then add ``manifest.json`` (which the hash cannot cover)."""
    for path in tmp.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    manifest = dict(manifest, content_hash=content_hash(tmp), hashed_files=f"all but {MANIFEST_FILE}",
                    created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    _write_json(tmp / MANIFEST_FILE, manifest)
    _fsync_dir(tmp)
    return manifest


def describe_inputs(base: Path, weighted: Sequence[tuple[Adapter, float]], method: str) -> dict[str, Any]:
    """The manifest fields shared by both methods; logs the weight warnings."""
    for note in weight_warnings([w for _, w in weighted], any(a.use_dora for a, _ in weighted)):
        log.warning(note)
    return {"format": "cortex-merge/1", "method": method, "base": {"path": str(base)},
            "inputs": [{"path": str(a.path), "weight": float(w), "use_dora": a.use_dora,
                        "r": a.checked.rank, "modules": len(a.modules),
                        "content_hash": a.checked.content_hash} for a, w in weighted]}


def merge_exact(base: str | Path, weighted: Sequence[tuple[Adapter, float]], out: str | Path, *,
                dtype: str = "float32", transform: BaseTransform | None = None,
                extra: dict[str, Any] | None = None, progress: bool = True) -> dict[str, Any]:
    """Stream the exact merge of ``weighted`` adapters into ``base``; write a model directory at ``out``.

    Every floating tensor passes through an fp32 master (after ``transform``, the hook for merging
    against a dequantised base) and is written as ``dtype`` (``same``: the base's own dtype).
    Returns the manifest written to ``out/manifest.json``.
    """
    base, out = Path(base), Path(out)
    refuse_existing(out)
    manifest = describe_inputs(base, weighted, "exact") | {"dtype": dtype} | (extra or {})
    modules = group_terms(weighted)
    layout = model_layout(base)
    check_fit(layout, modules)
    target = OUT_DTYPES[dtype]
    bar = tqdm(total=sum(map(len, layout.values())), desc="merge", unit="tensor", disable=not progress)
    with atomic_dir(out) as tmp, bar:
        total_size = 0
        for shard, infos in layout.items():
            with open(base / shard, "rb") as handle:
                produce = _producer(handle, infos, modules, target, transform, bar.update)
                specs = [(i.name, _out_dtype(i, target), i.shape) for i in infos]
                total_size += write_shard(tmp / shard, specs, produce, {"format": "pt"})
        copy_side_files(base, tmp, layout, dtype)
        if (base / INDEX_FILE).is_file():
            index = json.loads((base / INDEX_FILE).read_text())
            index["metadata"] = dict(index.get("metadata") or {}, total_size=total_size)
            _write_json(tmp / INDEX_FILE, index)
        return finish(tmp, manifest | {"modules_merged": len(modules)})


def _producer(handle: Any, infos: list[TensorInfo], modules: dict[str, list[Term]], target: torch.dtype | None,
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


def _out_dtype(info: TensorInfo, target: torch.dtype | None) -> torch.dtype:
    source = DTYPES[info.dtype]
    return target if target is not None and source.is_floating_point else source


def copy_side_files(base: Path, tmp: Path, layout: dict[str, list[TensorInfo]], dtype: str) -> None:
    """Copy config, tokenizer and other top-level files; set the config's dtype; skip pickles."""
    for src in sorted(base.iterdir()):
        if src.name in layout or src.name in (INDEX_FILE, MANIFEST_FILE) or src.name.startswith("."):
            continue
        if not src.is_file() or src.name.lower().endswith(PICKLE_SUFFIXES):
            log.warning("not copying %s (%s)", src.name, "pickle" if src.is_file() else "not a file")
            continue
        if src.name == "config.json" and dtype != "same":
            config = json.loads(src.read_text())
            config["dtype"] = dtype  # transformers ≥ 4.56; older ones read torch_dtype
            if "torch_dtype" in config:
                config["torch_dtype"] = dtype
            _write_json(tmp / src.name, config)
        else:
            shutil.copyfile(src, tmp / src.name)


def merge_rank_r(base: str | Path, weighted: Sequence[tuple[Adapter, float]], out: str | Path, rank: int,
                 *, transform: BaseTransform | None = None, extra: dict[str, Any] | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Write a rank-``rank`` peft LoRA adapter (``lora_alpha = r``, scaling 1) of the exact merged delta.

    Base tensors are read (one at a time) only for modules with DoRA terms. The manifest's
    ``energy`` maps each module to the fraction of its delta's energy (Σσ²) kept. The adapter is a
    plain one, as peft writes it: short ``target_modules`` over the layers the inputs touch, with zero
    factors (ΔW = 0, exact) where no input targets a module, so ``cortex.adapter.check_adapter`` passes it.
    """
    from peft import LoraConfig  # only this path needs peft

    base, out = Path(base), Path(out)
    if rank < 1:
        raise CortexError(f"--rank must be a positive integer, got {rank}")
    refuse_existing(out)
    manifest = describe_inputs(base, weighted, "rank-r") | {"rank": rank, "delta": "W' - W"} | (extra or {})
    modules = group_terms(weighted)
    layout = model_layout(base)
    check_fit(layout, modules)
    where = {i.name: (shard, i) for shard, infos in layout.items() for i in infos}
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
        return finish(tmp, manifest | {"energy": energy, "modules_merged": len(modules)})


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
    """The adapter :func:`merge_rank_r` wrote at ``out``, through the checked loader (its adapter files
    only: the folder also holds the merge's ``manifest.json``), for folding into the base."""
    out = Path(out)
    files = out.parent / f".{out.name}.adapter"
    shutil.rmtree(files, ignore_errors=True)
    files.mkdir(parents=True)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        shutil.copyfile(out / name, files / name)
    return load_adapter(files, spec, own_limits(spec, rank), bounds=NO_NORM_BOUNDS)
