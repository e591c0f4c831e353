"""The offline model store: content-hash revisions, limits, atomic writes, safe names."""

from __future__ import annotations

import os
import shutil
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from cortex.adapter import ADAPTER_FILES
from cortex.errors import CortexError
from cortex.hub import local as local_module
from cortex.hub.hf import HFStore
from cortex.hub.local import LocalStore
from cortex.hub.store import (
    ModelStore,
    NotAllowed,
    RemoteFile,
    RevisionNotFound,
    StoreError,
    TooLarge,
    check_repo_id,
    open_store,
)
from cortex.protocol.hashing import content_hash

REPO = "miner1/cortex-adapter"


def make_adapter(folder: Path, weights: bytes = b"\x01" * 2048, extra: dict[str, bytes] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8}')
    (folder / "adapter_model.safetensors").write_bytes(weights)
    (folder / "README.md").write_text("---\nlibrary_name: peft\n---\n# adapter\n")
    for name, data in (extra or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture
def adapter(tmp_path: Path) -> Path:
    return make_adapter(tmp_path / "adapter", extra={"logs/train.log": b"loss 1.0\n"})


def revision_dirs(store: LocalStore, repo_id: str = REPO) -> list[str]:
    revs = store.root / repo_id / "revisions"
    return sorted(p.name for p in revs.iterdir()) if revs.exists() else []


def test_round_trip(store: LocalStore, adapter: Path, tmp_path: Path) -> None:
    rev = store.upload(REPO, adapter, message="round 1")
    assert rev == content_hash(adapter)
    assert isinstance(store, ModelStore)
    assert store.exists(REPO, rev) and store.is_private(REPO)
    assert store.revisions(REPO) == [rev]
    files = store.list_files(REPO, rev)
    assert files == sorted(
        (RemoteFile(p.relative_to(adapter).as_posix(), p.stat().st_size) for p in adapter.rglob("*") if p.is_file()),
        key=lambda f: f.path,
    )
    out = store.download(REPO, rev, tmp_path / "out", allow=ADAPTER_FILES, max_bytes=10_000)
    assert sorted(p.name for p in out.iterdir()) == sorted(ADAPTER_FILES)
    for name in ADAPTER_FILES:
        assert (out / name).read_bytes() == (adapter / name).read_bytes()
    assert content_hash(out) == content_hash(adapter, ADAPTER_FILES)


def test_same_content_same_revision(store: LocalStore, adapter: Path, tmp_path: Path) -> None:
    rev = store.upload(REPO, adapter)
    copy = shutil.copytree(adapter, tmp_path / "copy")
    assert store.upload(REPO, copy) == rev
    assert revision_dirs(store) == [rev]
    assert store.revisions(REPO) == [rev]
    assert store.upload("other/repo", copy) == rev  # content addressed in every repo
    assert not any((store.root / ".staging").iterdir())


def test_revisions_are_immutable(store: LocalStore, adapter: Path, tmp_path: Path) -> None:
    rev1 = store.upload(REPO, adapter)
    rev1_dir = store.root / REPO / "revisions" / rev1
    before = {f.path: (rev1_dir / f.path).read_bytes() for f in store.list_files(REPO, rev1)}
    (adapter / "adapter_model.safetensors").write_bytes(b"\x02" * 4096)
    rev2 = store.upload(REPO, adapter)
    assert rev2 != rev1
    assert store.revisions(REPO) == [rev2, rev1]
    assert {p: (rev1_dir / p).read_bytes() for p in before} == before
    assert content_hash(rev1_dir) == rev1
    for path in rev1_dir.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o444  # stored files are read-only
    old = store.download(REPO, rev1, tmp_path / "old", allow=ADAPTER_FILES, max_bytes=10_000)
    assert (old / "adapter_model.safetensors").read_bytes() == b"\x01" * 2048
    # Uploading the old content again makes it the newest revision (a rollback), stored once.
    (adapter / "adapter_model.safetensors").write_bytes(b"\x01" * 2048)
    assert store.upload(REPO, adapter) == rev1
    assert store.revisions(REPO) == [rev1, rev2]
    assert revision_dirs(store) == sorted([rev1, rev2])


def test_byte_limit(store: LocalStore, tmp_path: Path) -> None:
    folder = make_adapter(tmp_path / "a", extra={"huge.bin": b"\0" * 100_000})
    rev = store.upload(REPO, folder)
    allowed_total = sum(f.size for f in store.list_files(REPO, rev) if f.path in ADAPTER_FILES)
    with pytest.raises(TooLarge, match="over the limit"):
        store.download(REPO, rev, tmp_path / "small", allow=ADAPTER_FILES, max_bytes=allowed_total - 1)
    assert not (tmp_path / "small").exists() or not any((tmp_path / "small").iterdir())
    # Files outside the allow-list do not count against the limit, and exactly the limit is fine.
    out = store.download(REPO, rev, tmp_path / "exact", allow=ADAPTER_FILES, max_bytes=allowed_total)
    assert not (out / "huge.bin").exists()
    with pytest.raises(TooLarge):
        store.download(REPO, rev, tmp_path / "huge", allow={"huge.bin"}, max_bytes=99_999)


def test_allow_list(store: LocalStore, adapter: Path, tmp_path: Path) -> None:
    rev = store.upload(REPO, adapter)
    out = store.download(REPO, rev, tmp_path / "out", allow={"adapter_config.json", "logs/train.log", "absent.bin"},
                         max_bytes=10_000)
    got = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert got == ["adapter_config.json", "logs/train.log"]
    assert not any(p.name.startswith(".download-") for p in out.iterdir())
    with pytest.raises(TypeError):
        store.download(REPO, rev, tmp_path / "x", allow="adapter_config.json", max_bytes=10_000)


def test_crash_while_renaming_leaves_no_revision(store: LocalStore, adapter: Path, monkeypatch) -> None:
    real_replace = os.replace

    def crash(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(dst).parent.name == "revisions":
            raise OSError("simulated crash")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        store.upload(REPO, adapter)
    assert revision_dirs(store) == []
    assert not any((store.root / ".staging").iterdir())
    with pytest.raises(RevisionNotFound):
        store.revisions(REPO)
    assert not store.exists(REPO, content_hash(adapter))

    monkeypatch.setattr(os, "replace", real_replace)
    rev = store.upload(REPO, adapter)
    assert store.revisions(REPO) == [rev] and revision_dirs(store) == [rev]


def test_crash_while_copying_leaves_no_revision(store: LocalStore, adapter: Path, monkeypatch) -> None:
    rev1 = store.upload(REPO, adapter)
    (adapter / "adapter_model.safetensors").write_bytes(b"\x03" * 100)
    real_copy = shutil.copyfile
    copied: list[str] = []

    def crash_on_second(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        copied.append(str(src))
        if len(copied) == 2:
            raise OSError("disk full")
        return real_copy(src, dst, *args, **kwargs)

    monkeypatch.setattr(local_module.shutil, "copyfile", crash_on_second)
    with pytest.raises(OSError, match="disk full"):
        store.upload(REPO, adapter)
    monkeypatch.setattr(local_module.shutil, "copyfile", real_copy)
    assert revision_dirs(store) == [rev1] and store.revisions(REPO) == [rev1]
    assert not any((store.root / ".staging").iterdir())
    rev2 = store.upload(REPO, adapter)
    assert store.revisions(REPO) == [rev2, rev1]


def test_crash_while_writing_history_keeps_the_old_log(store: LocalStore, adapter: Path, monkeypatch) -> None:
    rev1 = store.upload(REPO, adapter)
    (adapter / "adapter_model.safetensors").write_bytes(b"\x04" * 10)
    real_replace = os.replace

    def crash(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(dst).name == "meta.json":
            raise OSError("power cut")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        store.upload(REPO, adapter)
    monkeypatch.setattr(os, "replace", real_replace)
    repo_dir = store.root / REPO
    assert store.revisions(REPO) == [rev1]  # the log is whole, without the new entry
    assert [p.name for p in repo_dir.iterdir() if p.name.startswith(".meta.json")] == []
    rev2 = store.upload(REPO, adapter)  # the complete revision was kept; uploading again records it
    assert store.revisions(REPO) == [rev2, rev1]


def test_orphan_staging_from_a_dead_process_is_invisible(store: LocalStore, adapter: Path) -> None:
    orphan = store.root / ".staging" / "deadbeef"
    orphan.mkdir()
    (orphan / "adapter_model.safetensors").write_bytes(b"half")
    rev = store.upload(REPO, adapter)
    assert store.revisions(REPO) == [rev] and revision_dirs(store) == [rev]


def test_concurrent_uploads_of_the_same_content(store: LocalStore, adapter: Path) -> None:
    with ThreadPoolExecutor(4) as pool:
        revs = set(pool.map(lambda _: store.upload(REPO, adapter), range(8)))
    assert len(revs) == 1
    assert revision_dirs(store) == list(revs) and store.revisions(REPO) == list(revs)


def test_visibility(store: LocalStore, adapter: Path) -> None:
    store.upload(REPO, adapter, private=True)
    assert store.is_private(REPO)
    store.set_visibility(REPO, False)
    assert not store.is_private(REPO)
    store.upload(REPO, adapter, private=True)  # an upload sets the visibility it asks for
    assert store.is_private(REPO)
    with pytest.raises(RevisionNotFound, match="upload to it first"):
        store.set_visibility("nobody/nothing", False)


def test_missing_things(store: LocalStore, adapter: Path, tmp_path: Path) -> None:
    rev = store.upload(REPO, adapter)
    missing = "0" * 64
    assert not store.exists(REPO, missing)
    with pytest.raises(RevisionNotFound):
        store.list_files(REPO, missing)
    with pytest.raises(RevisionNotFound):
        store.download(REPO, missing, tmp_path / "x", allow=ADAPTER_FILES, max_bytes=10)
    with pytest.raises(RevisionNotFound):
        store.list_files("nobody/nothing", rev)
    with pytest.raises(StoreError, match="not a directory"):
        store.upload(REPO, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="no files"):
        store.upload(REPO, tmp_path / "empty")


BAD_REPO_IDS = [
    "", "noslash", "a/b/c", "../etc", "a/..", "..", "a/../b", "/abs/x", "a/b/", "-a/b", "a/b.", "a/.b",
    "a--b/c", "a/b..c", "a/b.git", "a" * 97 + "/b", "a/" + "b" * 97, "a/b c", "a/ü", "a\\b/c", "a/b\0",
]


@pytest.mark.parametrize("repo_id", BAD_REPO_IDS)
def test_bad_repo_ids(store: LocalStore, adapter: Path, repo_id: str) -> None:
    with pytest.raises(NotAllowed, match="invalid repo id"):
        store.upload(repo_id, adapter)
    with pytest.raises(NotAllowed):
        store.revisions(repo_id)
    with pytest.raises(NotAllowed):
        store.exists(repo_id, "0" * 64)
    assert [p.name for p in store.root.iterdir()] == [".staging"]


@pytest.mark.parametrize("repo_id", ["miner/adapter", "Org_1/model-v1.2", "a/b", "x" * 96 + "/" + "y" * 96])
def test_good_repo_ids(repo_id: str) -> None:
    assert check_repo_id(repo_id) == repo_id


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab_-./ü\\ ", min_size=0, max_size=12))
def test_repo_id_rules_match_huggingface_hub(repo_id: str) -> None:
    try:
        validate_repo_id(repo_id)
        hub_ok = repo_id.count("/") == 1
    except HFValidationError:
        hub_ok = False
    try:
        check_repo_id(repo_id)
        ours = True
    except NotAllowed:
        ours = False
    assert ours == hub_ok


@pytest.mark.parametrize("name", ["../secret", "/etc/passwd", "a/../../b", "./x", "a//b", "a\\b", "", "dir/"])
def test_unsafe_file_names_are_refused(store: LocalStore, adapter: Path, tmp_path: Path, name: str) -> None:
    rev = store.upload(REPO, adapter)
    with pytest.raises(NotAllowed, match="unsafe file name"):
        store.download(REPO, rev, tmp_path / "out", allow={name, "adapter_config.json"}, max_bytes=10_000)
    assert not (tmp_path / "secret").exists()


@pytest.mark.parametrize("revision", ["../../etc", "main", "0" * 63, "G" * 64, "0" * 64 + "/..", ""])
def test_revisions_must_be_content_hashes(store: LocalStore, adapter: Path, tmp_path: Path, revision: str) -> None:
    store.upload(REPO, adapter)
    with pytest.raises(NotAllowed, match="not a content hash"):
        store.list_files(REPO, revision)
    with pytest.raises(NotAllowed):
        store.download(REPO, revision, tmp_path / "out", allow=ADAPTER_FILES, max_bytes=10_000)


def test_symlinks_are_refused(store: LocalStore, adapter: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("private key")
    (adapter / "link.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(NotAllowed, match="symbolic link"):
        store.upload(REPO, adapter)
    assert revision_dirs(store) == []


def test_open_store(tmp_path: Path) -> None:
    assert isinstance(open_store(f"local:{tmp_path / 's'}"), LocalStore)
    hub = open_store("hf:http://127.0.0.1:9")
    assert isinstance(hub, HFStore) and hub.endpoint == "http://127.0.0.1:9"
    assert isinstance(open_store("hf"), ModelStore)
    for spec in ["s3:bucket", "local:", "", "huggingface"]:
        with pytest.raises(StoreError, match="unknown model store") as info:
            open_store(spec)
        assert isinstance(info.value, CortexError) and "\n" not in str(info.value)
