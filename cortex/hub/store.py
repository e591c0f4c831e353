"""The model store: one small interface, two implementations (DESIGN.md §6).

A miner uploads an adapter folder and gets back an immutable revision id; a
validator lists that revision's files with their sizes and downloads it with a
file allow-list and a byte limit. ``open_store("local:DIR")`` gives the offline
store (:mod:`cortex.hub.local`), ``open_store("hf")`` the Hugging Face Hub
(:mod:`cortex.hub.hf`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Collection, Iterable, Protocol, runtime_checkable

from cortex.errors import CortexError

# Same rules as huggingface_hub.utils.validate_repo_id, with the namespace required.
_REPO_ID = re.compile(r"(?=.{1,96}/)[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]{1,96}", re.ASCII)


class StoreError(CortexError):
    """A model store failure; the message says what to do."""


class RevisionNotFound(StoreError):
    """The repo or the revision does not exist (or is private and the token cannot see it)."""


class TooLarge(StoreError):
    """The allowed files of a revision take more bytes than the caller's limit."""


class NotAllowed(StoreError):
    """A request the store refuses: a bad repo id, an unsafe file name, a revision that is not pinned."""


class StoreUnavailable(StoreError):
    """The store could not be reached, or kept failing after the retries."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a revision: its POSIX path inside the repo and its size in bytes."""

    path: str
    size: int


@runtime_checkable
class ModelStore(Protocol):
    """Where adapters live. Revisions are immutable ids; nothing here follows a branch."""

    def upload(self, repo_id: str, folder: Path, *, private: bool = True, message: str = "") -> str:
        """Upload every file of ``folder`` as the repo's new content; return its immutable revision."""
        ...

    def set_visibility(self, repo_id: str, private: bool) -> None:
        """Make the repo private or public."""
        ...

    def is_private(self, repo_id: str) -> bool:
        """Whether the repo is private."""
        ...

    def list_files(self, repo_id: str, revision: str) -> list[RemoteFile]:
        """The files of ``revision`` with their sizes, sorted by path."""
        ...

    def download(
        self, repo_id: str, revision: str, dest: Path, *, allow: Collection[str], max_bytes: int
    ) -> Path:
        """Fetch the files of ``revision`` named in ``allow`` into ``dest`` (created if needed).

        Lists the revision first and raises :class:`TooLarge` before fetching anything when the
        allowed files take more than ``max_bytes`` together. Other files are never fetched.
        """
        ...

    def exists(self, repo_id: str, revision: str) -> bool:
        """Whether ``revision`` exists in the repo."""
        ...

    def revisions(self, repo_id: str) -> list[str]:
        """The repo's history of revisions, newest first."""
        ...


def check_repo_id(repo_id: str) -> str:
    """Return ``repo_id`` when it is a valid ``namespace/name``; raise :class:`NotAllowed` otherwise."""
    ok = (
        isinstance(repo_id, str)
        and _REPO_ID.fullmatch(repo_id) is not None
        and all(part[0] not in "-." and part[-1] not in "-." for part in repo_id.split("/"))
        and "--" not in repo_id
        and ".." not in repo_id
        and not repo_id.endswith(".git")
    )
    if not ok:
        raise NotAllowed(
            f"invalid repo id {repo_id!r}: use 'namespace/name' with letters, digits, '-', '_' or '.' "
            "(at most 96 each, no '--' or '..', not starting or ending with '-' or '.')"
        )
    return repo_id


def check_file_name(name: str) -> str:
    """Return ``name`` when it is a safe relative POSIX path inside a repo; raise :class:`NotAllowed`."""
    parts = PurePosixPath(name).parts if isinstance(name, str) else ()
    ok = (
        bool(parts)
        and not name.startswith("/")
        and "\\" not in name
        and "\0" not in name
        and "//" not in name
        and not name.endswith("/")
        and all(part not in (".", "..") for part in name.split("/"))
    )
    if not ok:
        raise NotAllowed(f"unsafe file name {name!r}: use a relative path without '..', '.', '\\' or a leading '/'")
    return name


def plan_download(
    files: Iterable[RemoteFile], allow: Collection[str], max_bytes: int, where: str
) -> list[RemoteFile]:
    """The files to fetch: those named in ``allow``, sorted, if together they fit in ``max_bytes``."""
    if isinstance(allow, str):
        raise TypeError("allow must be a collection of file names, not a string")
    allowed = {check_file_name(name) for name in allow}
    chosen = sorted((f for f in files if f.path in allowed), key=lambda f: f.path)
    total = sum(f.size for f in chosen)
    if total > max_bytes:
        raise TooLarge(
            f"{where}: the allowed files take {total} bytes, over the limit of {max_bytes}; "
            "skip this revision or raise the limit"
        )
    return chosen


def open_store(spec: str) -> ModelStore:
    """``local:DIR`` → :class:`~cortex.hub.local.LocalStore`; ``hf`` or ``hf:ENDPOINT`` → the Hub."""
    kind, _, arg = spec.partition(":")
    if kind == "local" and arg:
        from cortex.hub.local import LocalStore

        return LocalStore(Path(arg).expanduser())
    if kind == "hf":
        from cortex.hub.hf import HFStore

        return HFStore(endpoint=arg or None)
    raise StoreError(f"unknown model store {spec!r}: use 'hf' (the Hugging Face Hub) or 'local:DIR' (offline)")
