"""Atomic writes: a temporary file (or folder) beside the target, fsync, ``os.replace``, fsync the folder.

A reader sees the old file or the new one, never half of either, even when the
writer is killed mid-write or the machine loses power; ``atomic_dir`` does the same for a new folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from cortex.errors import CortexError

log = logging.getLogger(__name__)


def fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_json(path: str | Path, data: Any, *, indent: int | None = 1) -> None:
    write_text(path, json.dumps(data, indent=indent, sort_keys=True) + "\n")


def refuse_existing(out: Path) -> None:
    """Refuse before any work when ``out`` exists: a new folder never overwrites one."""
    if out.exists():
        raise CortexError(f"{out} already exists; choose a new --out or remove it")


@contextlib.contextmanager
def atomic_dir(out: str | Path) -> Iterator[Path]:
    """A new folder ``out``, whole or not at all: yield a hidden ``.<name>.partial-*`` folder beside it and,
    once the block succeeds, fsync every file in it and rename it onto ``out`` (``os.replace``).

    ``out`` must not exist (a CortexError before any work). A partial folder that a killed run left (its
    cleanup skipped) is removed first: it is this function's own, by its name.
    """
    out = Path(out)
    refuse_existing(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.partial-*"):
        log.warning("removing %s left by an interrupted run", stale)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
        for path in tmp.rglob("*"):
            if path.is_file():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
        fsync_dir(tmp)
        os.replace(tmp, out)
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
