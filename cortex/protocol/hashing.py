"""Content hashes of model folders, and the hotkey-salted hash that commitments carry.

``content_hash`` is a sha256 over the files of a folder in a fixed order (sorted
relative POSIX paths). Each file contributes its path, its size and the sha256 of
its bytes, so renaming or moving a file changes the hash as much as editing it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def content_hash(folder: str | Path, files: Iterable[str] | None = None) -> str:
    """sha256 (hex) over ``files`` of ``folder`` (default: every regular file) in sorted order."""
    root = Path(folder)
    if files is None:
        names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    else:
        names = sorted(set(files))
    digest = hashlib.sha256()
    for name in names:
        path = root / name
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(str(path.stat().st_size).encode() + b"\0")
        digest.update(bytes.fromhex(file_sha256(path)))
    return digest.hexdigest()


def salted_hash(content_hash_hex: str, hotkey_ss58: str) -> str:
    """H(content_hash ‖ hotkey): what a commitment carries, so a copied commitment fails for the copier."""
    return hashlib.sha256(bytes.fromhex(content_hash_hex) + hotkey_ss58.encode("utf-8")).hexdigest()
