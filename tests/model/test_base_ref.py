"""BaseRef, the one type for "which base a round uses": fetched and checked the same way by every role."""

from __future__ import annotations

import pytest

from cortex.errors import CortexError
from cortex.hub.local import LocalStore
from cortex.model.pointer import BaseRef, local_base, model_hash
from cortex.protocol.commitment import ModelCommitment

REPO = "cortex/tiny-llama"


@pytest.fixture
def published(tmp_path):
    """A base folder (model files plus a stray file the pointer's hash does not cover) in a local store."""
    folder = tmp_path / "base"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "tokenizer.json").write_text("{}")
    store = LocalStore(tmp_path / "store")
    return folder, store, store.upload(REPO, folder, private=False)


def pointer(revision: str, digest: str) -> ModelCommitment:
    return ModelCommitment.for_content("cortex-tiny", REPO, revision, digest, "owner", kind="base")


def test_fetch_sets_the_path_and_checks_the_pointer_by_model_hash(published, tmp_path):
    folder, store, revision = published
    pinned = BaseRef(REPO, revision).fetch(store, tmp_path / "cache")  # no pointer: nothing to check
    assert pinned.path is not None and model_hash(pinned.path) == model_hash(folder)
    good = BaseRef(REPO, revision, block=7, hotkey="owner", commitment=pointer(revision, model_hash(folder)))
    fetched = good.fetch(store, tmp_path / "cache2")
    assert (fetched.repo, fetched.revision, fetched.block) == (REPO, revision, 7) and good.path is None
    assert (fetched.path / "config.json").read_text() == (folder / "config.json").read_text()
    assert str(fetched) == f"{REPO}@{revision}"  # one string for logs, score tables and round records
    forged = BaseRef(REPO, revision, block=8, hotkey="owner", commitment=pointer(revision, "ab" * 32))
    with pytest.raises(CortexError, match="does not match"):
        forged.fetch(store, tmp_path / "cache3")
    stolen = BaseRef(REPO, revision, block=9, hotkey="mallory", commitment=pointer(revision, model_hash(folder)))
    with pytest.raises(CortexError, match="does not match"):  # the salt is the committing hotkey
        stolen.verify(fetched.path)


def test_a_local_base_is_named_by_its_model_hash(published):
    folder, _, _ = published
    before = local_base(folder, REPO)
    (folder / "notes.txt").write_text("not a model file")
    after = local_base(folder, REPO)
    assert before.revision == after.revision == model_hash(folder) and after.path == folder.resolve()
    (folder / "config.json").write_text('{"model_type": "llama", "changed": true}')
    assert local_base(folder, REPO).revision != before.revision
