"""Fetching a competition's base model files: from a model store by repo and pinned revision, or a folder.

Loading them for generation (device, dtype) is ``cortex.eval.base.load_base``.

Only standard Hugging Face model files are fetched (config, safetensors weights, tokenizer, card):
never pickles (``*.bin``, ``*.pt``, ``*.pth``), never code. ``trust_remote_code`` is always False,
and a config that asks for remote code (``auto_map``) is refused before transformers reads it.
A download lands in a temporary folder and is renamed into the cache only once it is complete
and checked, so a cached revision is always whole.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

from cortex.errors import CortexError
from cortex.hub.store import ModelStore, StoreUnavailable
from cortex.model.shards import weight_map
from cortex.protocol.commitment import is_repo_id
from cortex.protocol.hashing import content_hash

log = logging.getLogger(__name__)

MODEL_FILES = frozenset({
    "config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "README.md",
})
SHARD = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")
DEFAULT_MAX_BYTES = 200 << 30  # a 70B base in bf16 takes about 141 GB
_CONTENT_HASH = re.compile(r"[0-9a-f]{64}")
_REVISION = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class BaseModelError(CortexError):
    """The base model cannot be fetched or loaded; the message says what to do."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("CORTEX_CACHE", Path.home() / ".cache" / "cortex")) / "models"


def is_model_file(path: str) -> bool:
    """Whether ``path`` (inside a repo) is a file a base may be loaded from."""
    return path in MODEL_FILES or SHARD.fullmatch(path) is not None


def model_files(paths: Iterable[str]) -> list[str]:
    """The allowed files among ``paths``, sorted (subfolders and everything else are skipped)."""
    return sorted(p for p in paths if is_model_file(p))


def check_model_dir(path: Path) -> None:
    """Refuse a folder transformers could not load safely: no config, remote code, no safetensors."""
    where = str(path)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise BaseModelError(f"{where} has no config.json: point at a Hugging Face model folder")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BaseModelError(f"{where}/config.json is not valid JSON ({exc}): re-download the base") from None
    if not isinstance(config, dict) or "auto_map" in config:
        raise BaseModelError(f"{where}: the config asks for custom code (auto_map); bases load without remote code")
    try:
        mapping = weight_map(path)
    except CortexError as exc:
        raise BaseModelError(f"{where}: {exc}") from None
    if mapping is not None:
        shards = set(mapping.values())
        missing = sorted(s for s in shards if not SHARD.fullmatch(s) or not (path / s).is_file())
        if missing:
            raise BaseModelError(f"{where}: safetensors shards missing or misnamed: {missing[:3]}")
    elif not (path / "model.safetensors").is_file():
        raise BaseModelError(
            f"{where} has no safetensors weights (model.safetensors or a sharded index): "
            "pickled weights (.bin/.pt) are never loaded; convert the base to safetensors"
        )
    if not (path / "tokenizer.json").is_file():
        raise BaseModelError(f"{where} has no tokenizer.json: the base must ship its fast tokenizer")


_OFFLINE_HINT = ("on an offline machine use the cortex-tiny base (`cortex base bootstrap --store local:DIR`), "
                 "pass a local model folder, or fetch the base once while online")


def _hub_store(where: str) -> ModelStore:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise BaseModelError(f"cannot download the base {where}: HF_HUB_OFFLINE is set; {_OFFLINE_HINT}")
    from cortex.hub.hf import HFStore

    return HFStore()


def _download(repo: str, revision: str, store: ModelStore, dest: Path, max_bytes: int) -> list[str]:
    """Fetch the allowed files into a staging folder, check them, and rename it to ``dest``."""
    where = f"{repo}@{revision[:12]}"
    listed = {f.path for f in store.list_files(repo, revision)}
    names = model_files(listed)
    if not names:
        raise BaseModelError(f"{where} has no model files (config.json, model.safetensors, tokenizer.json)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{revision[:12]}-", dir=dest.parent))
    try:
        store.download(repo, revision, stage, allow=names, max_bytes=max_bytes)
        check_model_dir(stage)
        if _CONTENT_HASH.fullmatch(revision) and listed == set(names) and content_hash(stage) != revision:
            raise BaseModelError(f"{where}: the downloaded files do not hash to the revision: skip this base")
        try:
            os.replace(stage, dest)
        except OSError:
            if not dest.is_dir():  # otherwise another process finished the same download first
                raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return names


def fetch_base(repo: str, revision: str | None, store: ModelStore | None = None, *,
               cache_dir: Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> Path:
    """The local folder of ``repo@revision``, downloaded into the cache on first use."""
    if not is_repo_id(repo):
        raise BaseModelError(f"base repo must be 'namespace/name', got {repo!r}")
    if not isinstance(revision, str) or not _REVISION.fullmatch(revision):
        raise BaseModelError(
            f"{repo}: revision must be a pinned commit sha or content hash, got {revision!r}: "
            "resolve the averager's base pointer or pass the revision `cortex base bootstrap` printed"
        )
    dest = Path(cache_dir or default_cache_dir()) / repo.replace("/", "--") / revision
    if dest.is_dir():
        return dest
    where = f"{repo}@{revision[:12]}"
    try:
        names = _download(repo, revision, store if store is not None else _hub_store(where), dest, max_bytes)
    except StoreUnavailable as exc:
        raise BaseModelError(f"cannot download the base {where} ({exc}); {_OFFLINE_HINT}") from None
    log.info("%s: fetched %d files into %s", where, len(names), dest)
    return dest
