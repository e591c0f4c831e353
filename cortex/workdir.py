"""Folders a command owns: the one rule for creating, reusing and clearing an output folder.

A command may create a folder and leave a marker in it (``.cortex-folder``, naming the command).
Later it may reuse or clear only a folder that is empty or carries its own marker; any other folder
(a checkout, a home directory, a chain with its wallets, another command's output) is refused with
one line that says what to do, or, where the command offers ``--force``, taken over when the user
asks for it. ``Owner.legacy`` names the files that marked a command's folders before the marker
existed (``bootstrap.json``, ``localnet.json``, a dataset's ``card.json``), so that folders made by
earlier versions are still recognised.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from cortex.atomic import write_json
from cortex.errors import CortexError

MARKER = ".cortex-folder"


@dataclass(frozen=True)
class Owner:
    command: str  # the command that makes such folders, e.g. "cortex localnet"
    flag: str  # the flag that names the folder, for the error line (e.g. "--workdir")
    legacy: tuple[str, ...] = ()  # files that marked this command's folders before MARKER did
    force: bool = True  # whether the command offers --force to take over a folder it did not make


def marked_by(folder: Path) -> str | None:
    """The command named by ``folder``'s marker, or None (no marker, or an unreadable one)."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("command") if isinstance(data, dict) else None


def owns(folder: Path, owner: Owner) -> bool:
    """Whether ``owner`` may reuse ``folder``: absent, empty, or carrying its marker (or a legacy one)."""
    folder = Path(folder)
    if not folder.exists():
        return True
    if not folder.is_dir():
        return False
    if not any(folder.iterdir()):
        return True
    if (folder / MARKER).exists():
        return marked_by(folder) == owner.command
    return any((folder / name).exists() for name in owner.legacy)


def check(folder: str | Path, owner: Owner, *, force: bool = False) -> Path:
    """``folder`` (resolved) if ``owner`` may write there; otherwise a one-line :class:`CortexError`.

    A file is refused even with ``force``; a folder of someone else's is taken over only with ``force``."""
    folder = Path(folder).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise CortexError(f"{owner.flag} {folder} is a file: choose a folder")
    if owns(folder, owner) or (force and owner.force):
        return folder
    other = marked_by(folder)
    whose = f"was made by {other}" if other else f"holds files that {owner.command} did not make"
    brave = ", or pass --force to let it delete what the folder holds" if owner.force else ""
    raise CortexError(f"{owner.flag} {folder} {whose}: choose a new or empty folder{brave}")


def mark(folder: str | Path, owner: Owner) -> None:
    """Leave ``owner``'s marker in ``folder`` (which exists)."""
    write_json(Path(folder) / MARKER, {"command": owner.command})


def claim(folder: str | Path, owner: Owner, *, force: bool = False) -> Path:
    """Check ``folder``, create it if needed and mark it as ``owner``'s; returns it resolved."""
    folder = check(folder, owner, force=force)
    folder.mkdir(parents=True, exist_ok=True)
    mark(folder, owner)
    return folder


def clear(folder: str | Path, owner: Owner, *, keep: tuple[str, ...] = (), force: bool = False) -> Path:
    """Claim ``folder`` and delete everything in it except the marker and the names in ``keep``."""
    folder = claim(folder, owner, force=force)
    for item in folder.iterdir():
        if item.name in keep or item.name == MARKER:
            continue
        shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
    return folder


def nested(a: str | Path, b: str | Path) -> bool:
    """Whether one of two folders lies inside the other (or they are the same)."""
    a, b = Path(a).expanduser().resolve(), Path(b).expanduser().resolve()
    return a == b or a in b.parents or b in a.parents
