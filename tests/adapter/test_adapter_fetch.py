"""cortex.adapter.fetch: refusals before any download, one download per revision, immutable cache, hash per hotkey."""

import os
import shutil
import sys
from pathlib import Path

import pytest

from cortex.hub.local import LocalStore
from cortex.hub.store import NotAllowed, RevisionNotFound, StoreUnavailable, TooLarge
from cortex.protocol.commitment import ModelCommitment
from cortex.protocol.competition import AdapterLimits
from cortex.protocol.hashing import content_hash
from cortex.adapter import REASONS, AdapterRejected
from cortex.adapter.fetch import AdapterCache, verify

from validator_fixtures import CountingStore

LIMITS = AdapterLimits(("lora",), 8, ("q_proj",), max_bytes=10_000)


def folder(tmp_path: Path, name: str, **files: bytes) -> Path:
    out = tmp_path / "src" / name
    out.mkdir(parents=True)
    base = {"adapter_config.json": b'{"r": 4}', "adapter_model.safetensors": b"x" * 100, "README.md": b"card"}
    for key, data in {**base, **files}.items():
        (out / key.replace("__", ".")).write_bytes(data)
    return out


@pytest.fixture()
def setup(tmp_path):
    store = CountingStore(LocalStore(tmp_path / "store"))
    return store, AdapterCache(store, tmp_path / "cache")


def upload(store, tmp_path, repo, **files):
    src = folder(tmp_path, repo.replace("/", "-"), **files)
    return store.upload(repo, src), content_hash(src)


@pytest.mark.parametrize("files,reason", [
    ({"adapter_model__bin": b"\x80\x04"}, "pickle"),
    ({"weights__pt": b"PK"}, "pickle"),
    ({"tokenizer__json": b"{}"}, "extra_files"),
    ({"config__json": b"{}"}, "extra_files"),
    ({"README__md": b"y" * 20_000}, "too_large"),
])
def test_refused_from_the_listing_before_any_download(setup, tmp_path, files, reason):
    store, cache = setup
    revision, _ = upload(store, tmp_path, "m/bad", **files)
    with pytest.raises(AdapterRejected) as caught:
        cache.fetch("m/bad", revision, LIMITS)
    assert caught.value.reason == reason
    assert store.downloads == [] and not cache.folder("m/bad", revision).exists()


def test_missing_revision_and_unreachable_store(setup, tmp_path):
    store, cache = setup
    revision, _ = upload(store, tmp_path, "m/ok")
    with pytest.raises(AdapterRejected) as caught:
        cache.fetch("m/ok", "ab" * 32, LIMITS)
    assert caught.value.reason == "revision_not_found"

    def down(*a, **k):
        raise StoreUnavailable("the Hub kept answering 503")

    store.inner.list_files = down
    with pytest.raises(AdapterRejected) as caught:
        cache.fetch("m/ok", revision, LIMITS)
    assert caught.value.reason == "store_unavailable"


def test_one_download_per_revision_and_the_cache_is_never_rewritten(setup, tmp_path):
    store, cache = setup
    revision, digest = upload(store, tmp_path, "m/ok")
    first = cache.fetch("m/ok", revision, LIMITS)
    assert first.downloaded and first.content_hash == digest == revision
    weights = first.path / "adapter_model.safetensors"
    inode, mtime = os.stat(weights).st_ino, os.stat(weights).st_mtime_ns
    again = AdapterCache(store, cache.root).fetch("m/ok", revision, LIMITS)  # a restarted validator
    assert not again.downloaded and again.path == first.path and again.content_hash == digest
    assert (os.stat(weights).st_ino, os.stat(weights).st_mtime_ns) == (inode, mtime)
    assert store.downloads == [("m/ok", revision)]
    assert sorted(p.name for p in first.path.iterdir()) == ["README.md", "adapter_config.json",
                                                             "adapter_model.safetensors"]
    (cache.root / "m--ok" / f"{revision}.json").unlink()  # the note is only a shortcut
    assert cache.fetch("m/ok", revision, LIMITS).content_hash == digest


def test_a_repo_that_vanishes_mid_download_leaves_nothing_behind(tmp_path):
    store = CountingStore(LocalStore(tmp_path / "store"), vanish={"m/gone"})
    revision, _ = upload(store, tmp_path, "m/gone")
    cache = AdapterCache(store, tmp_path / "cache")
    with pytest.raises(AdapterRejected) as caught:
        cache.fetch("m/gone", revision, LIMITS)
    assert caught.value.reason == "revision_not_found"
    assert list((tmp_path / "cache" / "m--gone").iterdir()) == []  # no staging folder, no partial file


def test_salted_hash_is_checked_per_hotkey(setup, tmp_path):
    store, cache = setup
    revision, digest = upload(store, tmp_path, "m/ok")
    fetched = cache.fetch("m/ok", revision, LIMITS)
    mine = ModelCommitment.for_content("cortex-tiny", "m/ok", revision, digest, "alice")
    verify(fetched, mine, "alice")
    with pytest.raises(AdapterRejected) as caught:
        verify(fetched, mine, "mallory")  # mallory committed alice's string
    assert caught.value.reason == "hash_mismatch"
    shutil.rmtree(tmp_path / "src")


@pytest.mark.parametrize("error,reason", [
    (RevisionNotFound("no such revision"), "revision_not_found"), (TooLarge("over"), "too_large"),
    (NotAllowed("pickle"), "not_allowed"), (StoreUnavailable("503"), "store_unavailable"),
    (OSError("disk full"), "download_failed"),
])
def test_every_store_failure_is_a_reason_of_the_one_vocabulary(setup, tmp_path, error, reason):
    """The validator and the averager record the same code, and it is one of ``REASONS``."""
    store, cache = setup
    revision, _ = upload(store, tmp_path, "m/ok")

    def fails(*a, **k):
        raise error

    store.inner.download = fails
    with pytest.raises(AdapterRejected) as caught:
        cache.fetch("m/ok", revision, LIMITS)
    assert caught.value.reason == reason and reason in REASONS
    assert list((cache.root / "m--ok").iterdir()) == []  # nothing cached, nothing half-made
