"""The offline model store: a directory whose revisions are content hashes.

Layout under ``root``::

    .staging/                      uploads in progress (same filesystem, so renames are atomic)
    NAMESPACE/NAME/meta.json       {"private": bool, "history": [{"revision", "time", "message"}, ...]}
    NAMESPACE/NAME/revisions/HASH/ the files of one revision, read-only once written

An upload copies the folder into ``.staging``, hashes the copy with
:func:`cortex.protocol.hashing.content_hash` and renames it to ``revisions/HASH`` in one
``os.replace``; a crash leaves at most an orphan under ``.staging``, never a half revision.
The same content always gives the same revision and is stored once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Collection, Iterator

from cortex.atomic import fsync_dir, write_json
from cortex.hub.store import (
    NotAllowed,
    RemoteFile,
    RevisionNotFound,
    StoreError,
    check_file_name,
    check_repo_id,
    plan_download,
)
from cortex.protocol.hashing import content_hash

logger = logging.getLogger(__name__)

_REVISION = re.compile(r"[0-9a-f]{64}")
_SKIP_DIRS = {".git", ".cache"}  # what huggingface_hub's upload_folder leaves out as well


def _folder_files(folder: Path) -> list[str]:
    """The relative POSIX paths of the regular files to upload; symlinks are refused."""
    names = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if rel.parts[0] in _SKIP_DIRS:
            continue
        if path.is_symlink():
            raise NotAllowed(f"{path} is a symbolic link: copy the real file into the folder before uploading")
        if path.is_file():
            names.append(check_file_name(rel.as_posix()))
    return names


class LocalStore:
    """A :class:`~cortex.hub.store.ModelStore` in a local directory, for offline use and tests."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._staging = self.root / ".staging"
        self._staging.mkdir(exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # -- paths and metadata ------------------------------------------------------------------

    def _repo_dir(self, repo_id: str) -> Path:
        path = (self.root / check_repo_id(repo_id)).resolve()
        if path.parent.parent != self.root:  # belt and braces: the repo id rules already ensure this
            raise NotAllowed(f"repo id {repo_id!r} escapes the store: use 'namespace/name'")
        return path

    def _revision_dir(self, repo_id: str, revision: str) -> Path:
        if not isinstance(revision, str) or not _REVISION.fullmatch(revision):
            raise NotAllowed(
                f"revision {revision!r} is not a content hash: pass the 64-hex revision that upload returned"
            )
        return self._repo_dir(repo_id) / "revisions" / revision

    def _read_meta(self, repo_id: str) -> dict[str, Any]:
        path = self._repo_dir(repo_id) / "meta.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RevisionNotFound(
                f"repo {repo_id} does not exist in {self.root}: upload to it first or check the repo id"
            ) from None

    @contextlib.contextmanager
    def _locked(self, repo_id: str) -> Iterator[Path]:
        """Hold the repo's lock (one writer of meta.json at a time, across processes)."""
        repo_dir = self._repo_dir(repo_id)
        (repo_dir / "revisions").mkdir(parents=True, exist_ok=True)
        with open(repo_dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield repo_dir
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- writes ------------------------------------------------------------------------------

    def upload(self, repo_id: str, folder: Path, *, private: bool = True, message: str = "") -> str:
        check_repo_id(repo_id)
        folder = Path(folder)
        if not folder.is_dir():
            raise StoreError(f"{folder} is not a directory: pass the folder that holds the adapter files")
        names = _folder_files(folder)
        if not names:
            raise StoreError(f"{folder} has no files to upload: save the adapter into it first")
        stage = self._staging / uuid.uuid4().hex
        try:
            for name in names:
                target = stage / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folder / name, target)
                with open(target, "rb") as handle:
                    os.fsync(handle.fileno())
                target.chmod(0o444)
            revision = content_hash(stage)  # hash the copy, so the revision names exactly what is stored
            with self._locked(repo_id) as repo_dir:
                final = repo_dir / "revisions" / revision
                if final.exists():
                    logger.info("%s: revision %s already stored", repo_id, revision[:12])
                else:
                    os.replace(stage, final)
                    fsync_dir(final.parent)
                    logger.info("%s: stored revision %s (%d files)", repo_id, revision[:12], len(names))
                self._record(repo_dir, revision, private, message)
        finally:
            if stage.exists():
                shutil.rmtree(stage, ignore_errors=True)
        return revision

    def _record(self, repo_dir: Path, revision: str, private: bool, message: str) -> None:
        meta_path = repo_dir / "meta.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {"history": []}
        history = meta["history"]
        if not history or history[-1]["revision"] != revision:
            history.append({"revision": revision, "time": time.time(), "message": message})
        meta["private"] = private
        write_json(meta_path, meta)

    def set_visibility(self, repo_id: str, private: bool) -> None:
        self._read_meta(repo_id)  # the repo must exist
        with self._locked(repo_id) as repo_dir:
            meta = self._read_meta(repo_id)
            meta["private"] = bool(private)
            write_json(repo_dir / "meta.json", meta)

    # -- reads -------------------------------------------------------------------------------

    def is_private(self, repo_id: str) -> bool:
        return bool(self._read_meta(repo_id)["private"])

    def exists(self, repo_id: str, revision: str) -> bool:
        return self._revision_dir(repo_id, revision).is_dir()

    def revisions(self, repo_id: str) -> list[str]:
        seen: dict[str, None] = {}
        for entry in reversed(self._read_meta(repo_id)["history"]):
            seen.setdefault(entry["revision"], None)
        return list(seen)

    def list_files(self, repo_id: str, revision: str) -> list[RemoteFile]:
        rev_dir = self._revision_dir(repo_id, revision)
        if not rev_dir.is_dir():
            raise RevisionNotFound(
                f"{repo_id}@{revision[:12]} does not exist in {self.root}: check the commitment's repo and revision"
            )
        return [
            RemoteFile(path.relative_to(rev_dir).as_posix(), path.stat().st_size)
            for path in sorted(rev_dir.rglob("*"))
            if path.is_file() and not path.is_symlink()
        ]

    def download(
        self, repo_id: str, revision: str, dest: Path, *, allow: Collection[str], max_bytes: int
    ) -> Path:
        files = self.list_files(repo_id, revision)
        chosen = plan_download(files, allow, max_bytes, f"{repo_id}@{revision[:12]}")
        rev_dir = self._revision_dir(repo_id, revision)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".download-", dir=dest))
        try:
            for remote in chosen:
                target = stage / remote.path
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(rev_dir / remote.path, target)
            for remote in chosen:  # all copied: move them into place
                (dest / remote.path).parent.mkdir(parents=True, exist_ok=True)
                os.replace(stage / remote.path, dest / remote.path)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        logger.info("%s@%s: downloaded %d files to %s", repo_id, revision[:12], len(chosen), dest)
        return dest
