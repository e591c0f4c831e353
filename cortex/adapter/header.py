"""A strict, bounds-checked reader of a safetensors header, for files nobody vouches for.

The format: 8 bytes little-endian ``N``, then ``N`` bytes of UTF-8 JSON mapping each tensor name to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the data that follows the
header), plus an optional ``"__metadata__"`` of strings. This module reads only the header, checks
every number against the file's real size, and never unpickles or allocates by a declared size;
the tensors are loaded (by ``safetensors`` itself) only once the header has passed. It is our own
reader because ``safetensors`` has no header-only check with reasons: its loader would map the file
and fail with one generic error, and a pickle would only be told apart after the fact.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit
MAX_NAME_CHARS = 512
MAX_DIMS = 8

# Byte sizes of every dtype the format knows; only some are accepted (``allowed``).
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}
FLOAT_DTYPES = ("F32", "F16", "BF16")

_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")


class HeaderError(ValueError):
    """A header that must not be loaded; ``reason`` is "bad_header", "dtype" or "pickle"."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    begin: int  # byte offsets into the data section
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _bad(message: str) -> HeaderError:
    return HeaderError("bad_header", message)


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    if len({key for key, _ in pairs}) != len(pairs):
        raise ValueError("a key is repeated")
    return dict(pairs)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def strict_json(raw: bytes) -> object:
    """Parse UTF-8 JSON refusing repeated keys and NaN/Infinity; raises ValueError or RecursionError."""
    return json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)


def _is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _tensor(name: object, entry: object, data_len: int, allowed: tuple[str, ...]) -> TensorInfo:
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
        raise _bad(f"tensor name {str(name)[:80]!r} is empty or too long")
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise _bad(f"{name}: expected exactly dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in allowed:
        raise HeaderError("dtype", f"{name}: dtype {str(dtype)[:20]!r} is not one of {list(allowed)}")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(map(_is_uint, shape)):
        raise _bad(f"{name}: shape must be a list of at most {MAX_DIMS} integers >= 0")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_is_uint, offsets)):
        raise _bad(f"{name}: data_offsets must be two integers >= 0")
    begin, end = offsets
    if not begin <= end <= data_len:
        raise _bad(f"{name}: data_offsets [{begin}, {end}] fall outside the {data_len} data bytes")
    info = TensorInfo(dtype, tuple(shape), begin, end)
    if end - begin != info.numel * DTYPE_SIZES[dtype]:
        raise _bad(f"{name}: {end - begin} bytes declared for shape {shape} of {dtype}")
    return info


def parse_header(
    prefix: bytes, file_size: int, allowed: tuple[str, ...] = FLOAT_DTYPES
) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Check a header given the file's first ``8 + N`` bytes (or fewer) and its size.

    Returns the tensors by name and the metadata. Raises :class:`HeaderError` on anything that
    ``safetensors`` would reject or that does not add up: lengths, offsets (in bounds, contiguous,
    covering the data exactly), dtypes (on ``allowed``), shapes and sizes.
    """
    if file_size < 8 or len(prefix) < 8:
        raise _bad(f"the file has {file_size} bytes, fewer than the 8-byte header length")
    (n,) = struct.unpack("<Q", prefix[:8])
    if n < 2 or n > MAX_HEADER_BYTES or n > file_size - 8:
        raise _bad(f"header length {n} is impossible for a file of {file_size} bytes")
    if len(prefix) < 8 + n:
        raise _bad("the header is truncated")
    if prefix[8:9] != b"{":
        raise _bad("the header is not a JSON object")
    try:
        header = strict_json(prefix[8 : 8 + n])
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, absurdly long integers
        raise _bad(f"the header is not valid UTF-8 JSON ({str(exc)[:60]})") from None
    if not isinstance(header, dict):
        raise _bad("the header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _bad("__metadata__ must map strings to strings")
    data_len = file_size - 8 - n
    tensors = {name: _tensor(name, entry, data_len, allowed) for name, entry in header.items()}
    position = 0
    for name, info in sorted(tensors.items(), key=lambda item: (item[1].begin, item[1].end)):
        if info.begin != position:
            what = "overlaps another tensor" if info.begin < position else "leaves a gap"
            raise _bad(f"{name}: data at byte {info.begin} {what} (expected {position})")
        position = info.end
    if position != data_len:
        raise _bad(f"the tensors cover {position} of the {data_len} data bytes")
    return tensors, metadata


def read_header(
    path: Path, allowed: tuple[str, ...] = FLOAT_DTYPES
) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """:func:`parse_header` on a file, reading no more than the header (and never unpickling).

    A file that starts like a pickle or a ``torch.save`` zip and fails the header check is
    reported as "pickle".
    """
    size = os.stat(path).st_size
    with open(path, "rb") as handle:
        start = handle.read(8)
        prefix = start
        if len(start) == 8:
            (n,) = struct.unpack("<Q", start)
            if 2 <= n <= min(MAX_HEADER_BYTES, size - 8):
                prefix += handle.read(n)
    try:
        return parse_header(prefix, size, allowed)
    except HeaderError as exc:
        if exc.reason == "bad_header" and prefix.startswith(_PICKLE_MAGIC):
            raise HeaderError("pickle", "the file is a pickle or torch.save archive") from None
        raise


def load_checked(path: Path, tensors: dict[str, TensorInfo]) -> dict:
    """Load with ``safetensors.torch`` (only after :func:`read_header` passed) and confirm it read
    exactly the tensors, dtypes and shapes the header declared."""
    import torch
    from safetensors.torch import load_file

    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
    try:
        loaded = load_file(path)
    except Exception as exc:  # noqa: BLE001 - any failure on untrusted bytes is a rejection
        raise _bad(f"safetensors refused the file: {str(exc)[:100]}") from None
    if set(loaded) != set(tensors) or any(
        tuple(t.shape) != tensors[n].shape or t.dtype != dtypes.get(tensors[n].dtype)
        for n, t in loaded.items()
    ):
        raise _bad("safetensors read something other than the header declares")
    return loaded
