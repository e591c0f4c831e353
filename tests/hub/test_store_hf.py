"""HFStore with the real huggingface_hub client against a fake Hub on 127.0.0.1 (tests/support/hub_server.py)."""

from __future__ import annotations

import itertools
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest

from cortex.adapter import ADAPTER_FILES
from cortex.hub.hf import HFStore
from cortex.hub.retry import SyncThrottler
from cortex.retry import RetryPolicy
from cortex.hub.store import (
    ModelStore,
    NotAllowed,
    RevisionNotFound,
    StoreUnavailable,
    TooLarge,
)
from hub_server import TOKEN, FakeHub
from test_store_local import make_adapter

_names = itertools.count()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    home = tmp_path_factory.mktemp("hf_home")
    with pytest.MonkeyPatch.context() as env, FakeHub() as server:
        # Keep huggingface_hub and hf_xet (whose session writes logs) out of the real home directory.
        env.setenv("HF_HOME", str(home))
        env.setenv("HF_XET_CACHE", str(home / "xet"))
        env.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        env.delenv("HF_TOKEN", raising=False)
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def store(hub: FakeHub, sleeps: list[float]) -> Iterator[HFStore]:
    # A fake sleep records the waits instead of taking them: tests never depend on timing.
    s = HFStore(hub.url, TOKEN, policy=RetryPolicy(retries=3, backoff=0.5), sleep=sleeps.append)
    yield s
    s.close()


@pytest.fixture
def repo(hub: FakeHub) -> Iterator[str]:
    yield f"miner{next(_names)}/adapter"
    hub.faults.clear()


@pytest.fixture
def adapter(tmp_path: Path) -> Path:
    return make_adapter(tmp_path / "adapter", extra={"optimizer.pt": b"\0" * 5000})


def test_upload_list_download(store: HFStore, hub: FakeHub, repo: str, adapter: Path, tmp_path: Path) -> None:
    assert isinstance(store, ModelStore)
    rev = store.upload(repo, adapter, message="round 1")
    assert re.fullmatch(r"[0-9a-f]{40}", rev)
    assert store.exists(repo, rev) and not store.exists(repo, "f" * 40)
    history = store.revisions(repo)
    assert history[0] == rev and len(history) == 2  # newest first, after the Hub's initial commit
    sizes = {f.path: f.size for f in store.list_files(repo, rev)}
    assert sizes.pop(".gitattributes") > 0  # the Hub's own file, from the initial commit
    assert sizes == {p.name: p.stat().st_size for p in adapter.iterdir()}

    out = store.download(repo, rev, tmp_path / "out", allow=ADAPTER_FILES, max_bytes=10_000)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == sorted(ADAPTER_FILES)
    for name in ADAPTER_FILES:
        assert (out / name).read_bytes() == (adapter / name).read_bytes()
    assert sum(1 for m, p in hub.calls if m == "GET" and f"/{repo}/resolve/" in p) == len(ADAPTER_FILES)
    assert not any("optimizer.pt" in path for _, path in hub.calls)  # never fetched

    # The same content again is the same revision; new content is a new one, and the old stays pinned.
    assert store.upload(repo, adapter) == rev
    (adapter / "adapter_model.safetensors").write_bytes(b"\x07" * 10)
    (adapter / "optimizer.pt").unlink()
    rev2 = store.upload(repo, adapter)
    assert rev2 != rev and store.revisions(repo)[:2] == [rev2, rev]
    assert "optimizer.pt" not in {f.path for f in store.list_files(repo, rev2)}  # the revision mirrors the folder
    old = store.download(repo, rev, tmp_path / "old", allow={"adapter_model.safetensors"}, max_bytes=10_000)
    assert (old / "adapter_model.safetensors").read_bytes() == b"\x01" * 2048


def test_byte_limit_is_checked_before_fetching(store: HFStore, hub: FakeHub, repo: str, adapter: Path,
                                               tmp_path: Path) -> None:
    rev = store.upload(repo, adapter)
    fetched = hub.count("GET", "/resolve/")
    with pytest.raises(TooLarge, match="over the limit"):
        store.download(repo, rev, tmp_path / "out", allow=ADAPTER_FILES, max_bytes=100)
    with pytest.raises(TooLarge):
        store.download(repo, rev, tmp_path / "out", allow={"optimizer.pt"}, max_bytes=4999)
    assert hub.count("GET", "/resolve/") == fetched and hub.count("HEAD", f"/{repo}/resolve/") == 0
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_visibility(store: HFStore, hub: FakeHub, repo: str, adapter: Path, tmp_path: Path) -> None:
    rev = store.upload(repo, adapter, private=True)
    assert store.is_private(repo)
    anonymous = HFStore(hub.url, token=False, policy=RetryPolicy(retries=0))
    with pytest.raises(RevisionNotFound, match="private"):
        anonymous.list_files(repo, rev)
    store.set_visibility(repo, private=False)
    assert not store.is_private(repo)
    out = anonymous.download(repo, rev, tmp_path / "out", allow={"adapter_config.json"}, max_bytes=1000)
    assert (out / "adapter_config.json").read_bytes() == (adapter / "adapter_config.json").read_bytes()
    anonymous.close()
    # Uploading privately to a public repo hides it again before the new revision lands.
    store.upload(repo, adapter, private=True)
    assert store.is_private(repo)


def test_429_then_success_waits_what_retry_after_says(store: HFStore, hub: FakeHub, repo: str, adapter: Path,
                                                      sleeps: list[float]) -> None:
    store.upload(repo, adapter)
    before = hub.count("PUT", "/settings")
    hub.fail("PUT", f"/{repo}/settings", [429, 429], headers={"Retry-After": "7"})
    acquired = []
    real_acquire = store.throttler.acquire
    store.throttler.acquire = lambda: (acquired.append(1), real_acquire())[1]  # type: ignore[method-assign]
    store.set_visibility(repo, private=False)
    assert hub.count("PUT", "/settings") - before == 3  # two 429s, then success
    assert len(acquired) == 3  # every attempt goes through the throttler
    assert sleeps == [7.0, 7.0]
    assert not store.is_private(repo)


def test_5xx_is_retried_with_exponential_backoff(store: HFStore, hub: FakeHub, repo: str, adapter: Path,
                                                 sleeps: list[float]) -> None:
    hub.fail("POST", "/api/repos/create", [500, 503])
    rev = store.upload(repo, adapter)  # repo creation is retried by the store alone
    assert store.exists(repo, rev)
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 0.55 and 1.0 <= sleeps[1] <= 1.1


def test_persistent_failure_gives_store_unavailable(store: HFStore, hub: FakeHub, repo: str, adapter: Path,
                                                    sleeps: list[float]) -> None:
    store.upload(repo, adapter)
    before = hub.count("GET", f"/api/models/{repo}")
    hub.fail("GET", f"/api/models/{repo}", [502] * 10)
    with pytest.raises(StoreUnavailable, match="try again later"):
        store.is_private(repo)
    assert hub.count("GET", f"/api/models/{repo}") - before == 4  # 1 attempt + max_retries=3
    assert len(sleeps) == 3


def test_404_is_final(store: HFStore, hub: FakeHub, repo: str, adapter: Path, tmp_path: Path,
                      sleeps: list[float]) -> None:
    store.upload(repo, adapter)
    missing = "0" * 40
    before = hub.count("GET", "/tree/")
    with pytest.raises(RevisionNotFound, match="no such revision"):
        store.list_files(repo, missing)
    with pytest.raises(RevisionNotFound):
        store.download(repo, missing, tmp_path / "out", allow=ADAPTER_FILES, max_bytes=10_000)
    assert hub.count("GET", "/tree/") - before == 2  # one attempt each, no retry
    with pytest.raises(RevisionNotFound, match="repo not found"):
        store.revisions("nobody/nothing")
    hub.fail("PUT", "/settings", [404])  # a bare 404, without the Hub's error code
    with pytest.raises(RevisionNotFound):
        store.set_visibility(repo, private=True)
    assert sleeps == []


def test_revisions_and_names_must_be_safe(store: HFStore, hub: FakeHub, repo: str, adapter: Path,
                                         tmp_path: Path) -> None:
    calls = len(hub.calls)
    for revision in ["main", "refs/pr/1", "0" * 39, "../" + "0" * 37]:
        with pytest.raises(NotAllowed, match="not a commit sha"):
            store.list_files(repo, revision)
        with pytest.raises(NotAllowed):
            store.download(repo, revision, tmp_path / "out", allow=ADAPTER_FILES, max_bytes=10)
    with pytest.raises(NotAllowed, match="invalid repo id"):
        store.list_files("../etc", "0" * 40)
    with pytest.raises(NotAllowed, match="invalid repo id"):
        store.upload("a/b/c", adapter)
    assert len(hub.calls) == calls  # refused before reaching the Hub
    rev = store.upload(repo, adapter)
    with pytest.raises(NotAllowed, match="unsafe file name"):
        store.download(repo, rev, tmp_path / "out", allow={"../adapter_config.json"}, max_bytes=10_000)


def test_throttler_blocks_past_the_rate_and_serves_many_threads() -> None:
    throttler = SyncThrottler(rate_limit=3, period=600)
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda _: throttler.acquire(), range(3)))  # three slots, granted at once
    fourth = threading.Event()
    threading.Thread(target=lambda: (throttler.acquire(), fourth.set()), daemon=True).start()
    assert not fourth.wait(0.2)  # the fourth waits for the period to pass
    throttler.close()
