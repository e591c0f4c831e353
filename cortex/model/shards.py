"""A Hugging Face model folder's safetensors shards: which file holds which tensor, and reading and
writing them one tensor at a time.

- ``weight_map``: the one parser of ``model.safetensors.index.json`` (tensor name → shard file);
- ``layout``: every shard's tensors with their byte ranges, each header read by the one strict reader
  (``cortex.adapter.header``) and checked against the index;
- ``read_tensor`` / ``write_shard``: one tensor by a plain read at its offsets (no memory map), and a
  shard written header first from known shapes, then tensor by tensor.

Our own writer because ``safetensors.torch.save_file`` takes every tensor at once: a merge of a 70B
base must hold one tensor at a time (``averager.stream``).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from cortex.adapter.header import HeaderError, TensorInfo, read_header
from cortex.errors import CortexError

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
          "U8": torch.uint8, "BOOL": torch.bool}
CODES = {v: k for k, v in DTYPES.items()}


@dataclass(frozen=True)
class ShardTensor:
    """One tensor of a shard: its name, its header entry and where the file's data section starts."""

    name: str
    info: TensorInfo
    data_start: int

    @property
    def dtype(self) -> str:
        return self.info.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.info.shape

    @property
    def start(self) -> int:  # absolute byte offsets in the file
        return self.data_start + self.info.begin

    @property
    def end(self) -> int:
        return self.data_start + self.info.end


def weight_map(folder: Path) -> dict[str, str] | None:
    """Tensor name → shard file from the folder's index; None for a single ``model.safetensors``
    (or no index). A malformed index is a ``CortexError``."""
    index = Path(folder) / INDEX_FILE
    if not index.is_file():
        return None
    try:
        mapping = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CortexError(f"{index} is malformed ({exc}): re-download the model") from None
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise CortexError(f"{index}: weight_map must map tensor names to shard files: re-download the model")
    return mapping


def shard_of(mapping: dict[str, str] | None, tensor: str) -> str:
    """The file that holds ``tensor`` (``model.safetensors`` when there is no index)."""
    return SINGLE_FILE if mapping is None else mapping.get(tensor, SINGLE_FILE)


def read_shard(path: Path) -> list[ShardTensor]:
    """A shard's tensors in file order, through the strict header reader (every dtype of ``DTYPES``)."""
    try:
        tensors, _ = read_header(path, allowed=tuple(DTYPES))
    except HeaderError as exc:
        raise CortexError(f"{path}: {exc}; only well-formed safetensors of {', '.join(DTYPES)} are read") from None
    data_start = path.stat().st_size - max((t.end for t in tensors.values()), default=0)
    return sorted((ShardTensor(name, t, data_start) for name, t in tensors.items()), key=lambda s: s.start)


def layout(base: Path) -> dict[str, list[ShardTensor]]:
    """Shard file name → its tensors, from the index (checked against each shard's header) or the single file."""
    mapping = weight_map(base)
    if mapping is not None:
        shards = sorted(set(mapping.values()))
    elif (base / SINGLE_FILE).is_file():
        shards = [SINGLE_FILE]
    else:
        raise CortexError(f"{base}: no {SINGLE_FILE} or {INDEX_FILE}; pass a Hugging Face model "
                          "directory saved with safetensors (pickled weights are never loaded)")
    out = {}
    for shard in shards:
        if not (base / shard).is_file():
            raise CortexError(f"{base}: shard {shard} named in the index is missing")
        out[shard] = read_shard(base / shard)
        if mapping is not None and {k for k, v in mapping.items() if v == shard} != {t.name for t in out[shard]}:
            raise CortexError(f"{base}: {shard} does not hold the tensors the index lists for it")
    return out


def read_tensor(handle: Any, where: ShardTensor) -> torch.Tensor:
    """Read one tensor with a plain read (a fresh, writable buffer)."""
    buf = bytearray(where.end - where.start)
    handle.seek(where.start)
    if handle.readinto(buf) != len(buf):
        raise CortexError(f"{handle.name}: truncated at tensor {where.name}")
    if not buf:
        return torch.empty(where.shape, dtype=DTYPES[where.dtype])
    return torch.frombuffer(buf, dtype=DTYPES[where.dtype]).reshape(where.shape)


def write_shard(path: Path, specs: Sequence[tuple[str, torch.dtype, tuple[int, ...]]],
                produce: Callable[[str], torch.Tensor], metadata: dict[str, str]) -> int:
    """Write a safetensors file tensor by tensor: header from ``specs`` first, then ``produce(name)``;
    returns the data bytes written."""
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
