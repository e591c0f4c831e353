"""Fetching an adapter, for every role: list first, refuse early, download the allowed files once,
cache by revision. The validator's round and the averager's round both fetch through ``AdapterCache``.

For each (repo, revision):

1. ``list_files``: a missing repo or revision, or an unreachable store, is a rejection.
2. The listing passes ``cortex.adapter.check_listing`` (the same file rules as the adapter checks):
   a pickle-like name is ``pickle``, anything off ``ADAPTER_FILES`` ``extra_files``, a total over the
   competition's ``max_bytes`` ``too_large``. Nothing has been downloaded yet.
3. Download only the allowed files, with the byte limit, into a staging folder; compute the
   content hash; rename the folder into the cache with one ``os.replace``.

Cached revisions are immutable: a folder is created whole by ``os.replace`` and never written again
(``safetensors`` files are memory-mapped by whoever is reading them), so a restart, a second round
or a second hotkey committing the same revision never downloads it again. The salted hash in a
commitment is checked per hotkey against the cached content hash (``verify``).

Every refusal is an :class:`~cortex.adapter.errors.AdapterRejected` whose reason is one of ``REASONS``
(the store's failures: ``revision_not_found``, ``too_large``, ``not_allowed``, ``store_unavailable``,
``download_failed``; the listing's: ``pickle``, ``extra_files``, ``too_large``; and ``hash_mismatch``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cortex.adapter.errors import AdapterRejected
from cortex.adapter.files import check_listing
from cortex.atomic import write_json
from cortex.hub.store import (
    ModelStore,
    NotAllowed,
    RevisionNotFound,
    StoreError,
    StoreUnavailable,
    TooLarge,
)
from cortex.protocol.commitment import ModelCommitment
from cortex.protocol.competition import AdapterLimits
from cortex.protocol.hashing import content_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fetched:
    repo: str
    revision: str
    path: Path
    content_hash: str
    downloaded: bool  # False when it came from the cache


def _store_reason(exc: Exception) -> str:
    if isinstance(exc, RevisionNotFound):
        return "revision_not_found"
    if isinstance(exc, TooLarge):
        return "too_large"
    if isinstance(exc, NotAllowed):
        return "not_allowed"
    if isinstance(exc, StoreUnavailable):
        return "store_unavailable"
    return "download_failed"


class AdapterCache:
    """Adapters by (repo, revision) under ``root``: ``root/REPO--NAME/REVISION/`` plus a JSON note."""

    def __init__(self, store: ModelStore, root: Path) -> None:
        self.store = store
        self.root = Path(root).expanduser()

    def folder(self, repo: str, revision: str) -> Path:
        return self.root / repo.replace("/", "--") / revision  # '--' is not allowed in repo ids

    def _note(self, repo: str, revision: str) -> Path:
        return self.root / repo.replace("/", "--") / f"{revision}.json"

    def cached(self, repo: str, revision: str) -> Fetched | None:
        folder, note = self.folder(repo, revision), self._note(repo, revision)
        if not folder.is_dir():
            return None
        try:
            digest = json.loads(note.read_text(encoding="utf-8"))["content_hash"]
        except (OSError, ValueError, KeyError, TypeError):
            digest = content_hash(folder)  # the folder is whole (it appeared by rename); the note is a shortcut
            write_json(note, {"content_hash": digest})
        return Fetched(repo, revision, folder, digest, downloaded=False)

    def fetch(self, repo: str, revision: str, limits: AdapterLimits) -> Fetched:
        """The cached revision, downloading it first if needed; ``AdapterRejected`` when refused."""
        hit = self.cached(repo, revision)
        if hit is not None:
            return hit
        where = f"{repo}@{revision[:12]}"
        try:
            listed = self.store.list_files(repo, revision)
        except (StoreError, OSError) as exc:
            raise AdapterRejected(_store_reason(exc), f"{where}: {exc}") from None
        try:
            check_listing({f.path: f.size for f in listed}, limits.max_bytes)
        except AdapterRejected as exc:
            raise AdapterRejected(exc.reason, f"{where}: {exc.message}") from None
        return self._download(repo, revision, limits, sorted(f.path for f in listed))

    def _download(self, repo: str, revision: str, limits: AdapterLimits, names: list[str]) -> Fetched:
        final = self.folder(repo, revision)
        final.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{revision[:12]}-", dir=final.parent))
        try:
            try:
                self.store.download(repo, revision, stage, allow=names, max_bytes=limits.max_bytes)
            except (StoreError, OSError) as exc:
                raise AdapterRejected(_store_reason(exc), f"{repo}@{revision[:12]}: download failed: {exc}") from None
            got = sorted(p.name for p in stage.iterdir())
            if got != names:  # the listing promised these files; anything else is a changing repo
                raise AdapterRejected("download_failed", f"{repo}@{revision[:12]}: expected {names}, got {got}")
            digest = content_hash(stage)
            try:
                os.replace(stage, final)
            except OSError:
                if not final.is_dir():  # otherwise another validator process finished first
                    raise
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        write_json(self._note(repo, revision), {"content_hash": digest})
        log.info("%s@%s: downloaded %d files (content hash %s)", repo, revision[:12], len(names), digest[:12])
        return Fetched(repo, revision, final, digest, downloaded=True)


def verify(fetched: Fetched, commitment: ModelCommitment, hotkey: str) -> None:
    """Raise ``AdapterRejected('hash_mismatch')`` unless the commitment's salted hash is this content's for ``hotkey``."""
    if not commitment.verify(fetched.content_hash, hotkey):
        raise AdapterRejected(
            "hash_mismatch",
            f"{fetched.repo}@{fetched.revision[:12]}: the committed hash is not sha256(content ‖ {hotkey[:8]}…): "
            "a copied commitment, or files that changed since the commit",
        )
