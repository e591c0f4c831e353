"""The Hugging Face Hub as a :class:`~cortex.hub.store.ModelStore`, through ``huggingface_hub``.

Every Hub call goes through one throttler (``rate_limit`` calls per ``period`` seconds) and is
retried (``cortex.retry``, the one policy) with backoff on HTTP 429, 5xx and dropped connections, waiting what
``Retry-After`` asks for; a 404 is final and becomes :class:`RevisionNotFound`. Revisions are
full 40-hex commit shas: a branch name such as ``main`` moves, so reads refuse it.

``huggingface_hub`` retries some requests on its own as well (tree and commit listings, the
pre-upload and commit calls of ``upload_folder``, the file download after a failed HEAD), so a
flaky Hub may see more attempts than ``retries``; the settings, repo creation and repo info
calls are retried only here.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Collection, Optional, TypeVar

from huggingface_hub import HfApi, RepoFile, constants
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from cortex.hub.retry import SyncThrottler
from cortex.retry import RetryPolicy, parse_retry_after, retrying
from cortex.hub.store import (
    NotAllowed,
    RemoteFile,
    RevisionNotFound,
    StoreError,
    StoreUnavailable,
    check_repo_id,
    plan_download,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
_TRANSIENT_STATUS = {408, 429}  # and every 5xx


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Dropped connections and timeouts of the HTTP client this huggingface_hub uses."""
    found = []
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"), ("requests", "ConnectionError"),
                         ("requests", "Timeout")):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


_TRANSPORT_ERRORS = _transport_errors()


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from (huggingface_hub wraps a failed HEAD in another error)."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__  # type: ignore[assignment]
    return chain


def _status(exc: BaseException) -> Optional[int]:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def transient(exc: BaseException) -> tuple[bool, Optional[float]]:
    """(retry?, Retry-After seconds) for an error raised by a huggingface_hub call."""
    for err in _causes(exc):
        if isinstance(err, _TRANSPORT_ERRORS):
            return True, None
        if isinstance(err, HfHubHTTPError):
            status = _status(err)
            if status is not None and (status in _TRANSIENT_STATUS or 500 <= status < 600):
                return True, parse_retry_after(err.response.headers.get("Retry-After"))
            return False, None
    return False, None


def check_revision(revision: str) -> str:
    if not isinstance(revision, str) or not _COMMIT_SHA.fullmatch(revision):
        raise NotAllowed(
            f"revision {revision!r} is not a commit sha: pass the full 40-hex sha that upload returned or "
            "that the commitment names, never a branch"
        )
    return revision


class HFStore:
    """The Hub store. ``token`` defaults to ``HF_TOKEN`` or the token saved by ``hf auth login``;
    ``False`` sends none (anonymous reads of public repos)."""

    def __init__(
        self,
        endpoint: Optional[str] = None,
        token: str | bool | None = None,
        *,
        rate_limit: int = 10,
        period: float = 1.0,
        policy: RetryPolicy = RetryPolicy(),
        sleep: Optional[Callable[[float], None]] = None,
    ) -> None:
        self.endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
        self.api = HfApi(endpoint=self.endpoint, token=token)
        self.throttler = SyncThrottler(rate_limit, period)
        self.policy = policy
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"HFStore({self.endpoint!r})"

    def close(self) -> None:
        self.throttler.close()

    # -- one call to the Hub -----------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        extra = {"sleep": self._sleep} if self._sleep is not None else {}

        def attempt() -> T:
            self.throttler.acquire()  # one slot per attempt
            return fn()

        try:
            return retrying(self.policy, transient, what, **extra)(attempt)
        except Exception as exc:
            error = self._translate(what, exc)
            if error is exc:
                raise
            raise error from exc

    def _translate(self, what: str, exc: Exception) -> Exception:
        if isinstance(exc, StoreError):
            return exc
        for err in _causes(exc):
            if isinstance(err, RevisionNotFoundError):
                return RevisionNotFound(f"{what}: no such revision on {self.endpoint}: check the commitment's revision")
            if isinstance(err, RemoteEntryNotFoundError):
                return RevisionNotFound(f"{what}: a listed file is missing on {self.endpoint}: skip this revision")
            if isinstance(err, RepositoryNotFoundError):
                return RevisionNotFound(
                    f"{what}: repo not found on {self.endpoint} (or private and the token cannot read it): "
                    "check the repo id and HF_TOKEN"
                )
        again, _ = transient(exc)
        if again:
            return StoreUnavailable(
                f"{what}: {self.endpoint} kept failing after {self.policy.retries} retries "
                f"({type(exc).__name__}): try again later"
            )
        status = next((s for s in map(_status, _causes(exc)) if s is not None), None)
        if status == 404:
            return RevisionNotFound(f"{what}: not found on {self.endpoint}: check the repo id and revision")
        if status in (401, 403):
            return StoreError(f"{what}: HTTP {status} from {self.endpoint}: set HF_TOKEN to a token with write access")
        if status is not None:
            return StoreError(f"{what}: HTTP {status} from {self.endpoint}: {str(exc).strip().splitlines()[0]}")
        return exc

    # -- writes ------------------------------------------------------------------------------

    def upload(self, repo_id: str, folder: Path, *, private: bool = True, message: str = "") -> str:
        check_repo_id(repo_id)
        folder = Path(folder)
        if not folder.is_dir() or not any(p.is_file() for p in folder.rglob("*")):
            raise StoreError(f"{folder} is not a folder with files: save the adapter into it first")
        if not self._create_repo(repo_id, private):
            self.set_visibility(repo_id, private)  # an existing repo: hide it before the new revision lands
        info = self._call(
            f"upload {repo_id}",
            lambda: self.api.upload_folder(
                repo_id=repo_id,
                folder_path=folder,
                commit_message=message or "Upload adapter with cortex",
                delete_patterns="*",  # the revision holds exactly the folder's files
            ),
        )
        revision = info.oid  # type: ignore[union-attr]
        logger.info("%s: uploaded revision %s", repo_id, revision)
        return check_revision(revision)

    def _create_repo(self, repo_id: str, private: bool) -> bool:
        """Create the repo; False when it already exists."""

        def create() -> bool:
            try:
                self.api.create_repo(repo_id, private=private)
                return True
            except HfHubHTTPError as exc:
                if _status(exc) == 409:
                    return False
                raise

        return self._call(f"create {repo_id}", create)

    def set_visibility(self, repo_id: str, private: bool) -> None:
        check_repo_id(repo_id)
        what = f"make {repo_id} {'private' if private else 'public'}"
        self._call(what, lambda: self.api.update_repo_settings(repo_id, private=private))

    # -- reads -------------------------------------------------------------------------------

    def is_private(self, repo_id: str) -> bool:
        check_repo_id(repo_id)
        return bool(self._call(f"info {repo_id}", lambda: self.api.model_info(repo_id)).private)

    def exists(self, repo_id: str, revision: str) -> bool:
        check_repo_id(repo_id)
        check_revision(revision)
        try:
            self._call(f"{repo_id}@{revision[:12]}", lambda: self.api.model_info(repo_id, revision=revision))
            return True
        except RevisionNotFound:
            return False

    def revisions(self, repo_id: str) -> list[str]:
        check_repo_id(repo_id)
        commits = self._call(f"history of {repo_id}", lambda: self.api.list_repo_commits(repo_id))
        return [commit.commit_id for commit in commits]

    def list_files(self, repo_id: str, revision: str) -> list[RemoteFile]:
        check_repo_id(repo_id)
        check_revision(revision)
        entries = self._call(
            f"{repo_id}@{revision[:12]}",
            lambda: list(self.api.list_repo_tree(repo_id, revision=revision, recursive=True)),
        )
        files = [RemoteFile(e.path, int(e.lfs.size if e.lfs else e.size)) for e in entries if isinstance(e, RepoFile)]
        return sorted(files, key=lambda f: f.path)

    def download(
        self, repo_id: str, revision: str, dest: Path, *, allow: Collection[str], max_bytes: int
    ) -> Path:
        where = f"{repo_id}@{revision[:12] if isinstance(revision, str) else revision}"
        chosen = plan_download(self.list_files(repo_id, revision), allow, max_bytes, where)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".download-", dir=dest))
        try:
            for remote in chosen:
                local = Path(
                    self._call(
                        f"{where} {remote.path}",
                        lambda remote=remote: self.api.hf_hub_download(
                            repo_id, remote.path, revision=revision, local_dir=stage
                        ),
                    )
                )
                if local.stat().st_size != remote.size:
                    raise StoreError(
                        f"{where}: {remote.path} has {local.stat().st_size} bytes, the listing said {remote.size}: "
                        "skip this revision"
                    )
            for remote in chosen:  # all fetched and checked: move them into place
                (dest / remote.path).parent.mkdir(parents=True, exist_ok=True)
                os.replace(stage / remote.path, dest / remote.path)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        logger.info("%s: downloaded %d files to %s", where, len(chosen), dest)
        return dest
