"""Which files an adapter folder may hold, checked from names and sizes before anything is opened.

An adapter is exactly what ``PeftModel.save_pretrained`` writes with safetensors (the default):
``adapter_config.json`` and ``adapter_model.safetensors``, plus an optional ``README.md`` model
card. Pickle-based files (``adapter_model.bin`` and friends) are never loaded. The same rules apply
to a store's listing (before a download: ``check_listing``) and to a folder on disk
(``check_folder``, which also refuses links and devices).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from cortex.adapter.errors import AdapterRejected

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
CARD_FILE = "README.md"
ADAPTER_FILES: frozenset[str] = frozenset({CONFIG_FILE, WEIGHTS_FILE, CARD_FILE})
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".dill", ".npy", ".npz")
MAX_CONFIG_BYTES = 64 << 10


def check_names(names: Iterable[str]) -> None:
    """Refuse pickle-like names (``pickle``) first, then anything off the allow-list (``extra_files``)."""
    names = sorted(names)
    pickles = [n for n in names if n.lower().endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise AdapterRejected("pickle", f"{pickles[:3]}: pickle-based files are never loaded; ship safetensors only")
    extra = [n for n in names if n not in ADAPTER_FILES]
    if extra:
        raise AdapterRejected("extra_files", f"{extra[:5]} are not among {sorted(ADAPTER_FILES)}")


def check_total(sizes: Mapping[str, int], max_bytes: int) -> None:
    """Refuse a folder (or a listing) over the competition's byte limit (``too_large``)."""
    total = sum(sizes.values())
    if total > max_bytes:
        raise AdapterRejected("too_large", f"{total} bytes, over the competition's {max_bytes}")


def check_listing(sizes: Mapping[str, int], max_bytes: int) -> None:
    """A store's listing of a revision (name → size), before anything is downloaded."""
    check_names(sizes)
    check_total(sizes, max_bytes)


def check_folder(folder: Path, max_bytes: int) -> dict[str, int]:
    """Names and sizes from ``lstat`` only (nothing is opened); returns name → size."""
    try:
        entries = {e.name: e.stat(follow_symlinks=False) for e in os.scandir(folder)}
    except OSError as exc:
        raise AdapterRejected("missing_config", f"cannot list {folder}: {exc.strerror}") from None
    check_names(entries)
    for name, st in sorted(entries.items()):
        if not stat.S_ISREG(st.st_mode):
            raise AdapterRejected("not_regular_file", f"{name} is a link, folder or device, not a file")
    sizes = {name: st.st_size for name, st in entries.items()}
    check_total(sizes, max_bytes)
    if CONFIG_FILE not in sizes:
        raise AdapterRejected("missing_config", f"no {CONFIG_FILE}")
    if sizes[CONFIG_FILE] > MAX_CONFIG_BYTES:
        raise AdapterRejected("too_large", f"{CONFIG_FILE} has {sizes[CONFIG_FILE]} bytes, over {MAX_CONFIG_BYTES}")
    if WEIGHTS_FILE not in sizes:
        raise AdapterRejected("missing_weights", f"no {WEIGHTS_FILE}")
    return sizes
