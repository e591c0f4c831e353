"""Loading a base: from a model store by repo@revision with an allow-list and a byte limit, or a folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from cortex.errors import CortexError
from cortex.hub.local import LocalStore
from cortex.hub.store import StoreUnavailable, TooLarge
from cortex.eval.base import default_dtype, device_map, load_base, parse_dtype, resolve_device
from cortex.model.loading import BaseModelError, check_model_dir, fetch_base, is_model_file, model_files
from cortex.model.tiny import TINY_REPO, TinyConfig, build_model
from cortex.model.tokenizer import chat_corpus, train_tokenizer
from cortex.protocol.competition import CORTEX_TINY, BaseModelRef

SMALL = TinyConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                   intermediate_size=64, max_position_embeddings=128)
CHAT = [{"role": "user", "content": "BTC 1d?"}, {"role": "assistant", "content": "<think>x</think><answer>{}</answer>"}]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    tok = train_tokenizer(chat_corpus([CHAT] * 5), vocab_size=512)
    folder = tmp_path_factory.mktemp("tiny")
    build_model(SMALL, tok, seed=3).save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "README.md").write_text("tiny\n")
    return folder


def publish(store: LocalStore, folder: Path, extra: dict[str, bytes] | None = None, drop=()) -> str:
    stage = folder.parent / f"stage-{len(list(folder.parent.iterdir()))}"
    shutil.copytree(folder, stage)
    for name in drop:
        (stage / name).unlink()
    for name, data in (extra or {}).items():
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        (stage / name).write_bytes(data)
    return store.upload(TINY_REPO, stage, private=False)


def test_allow_list():
    assert all(map(is_model_file, ["config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja",
                                   "model-00001-of-00030.safetensors", "model.safetensors.index.json"]))
    bad = ["pytorch_model.bin", "model.pt", "original/consolidated.00.pth", "modeling_llama.py",
           "sub/config.json", "model-1-of-2.safetensors", "bootstrap.json", "tokenizer.model"]
    assert not any(map(is_model_file, bad))
    assert model_files(["b.py", "config.json", "README.md"]) == ["README.md", "config.json"]


def test_publish_and_load_round_trip(model_dir, tmp_path):
    store = LocalStore(tmp_path / "store")
    revision = publish(store, model_dir)
    ref = BaseModelRef(repo=TINY_REPO, revision=revision)
    model, tok = load_base(ref, store, cache_dir=tmp_path / "cache")
    assert not model.training and model.dtype == torch.float32
    local, _ = load_base(model_dir)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), local.state_dict().values()))
    ids = tok.apply_chat_template(CHAT[:1], add_generation_prompt=True, return_dict=True, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] <= ids["input_ids"].shape[1] + 4
    # The builtin competition's base has no pinned revision: the caller passes the one it resolved.
    again, _ = load_base(CORTEX_TINY.base, store, revision=revision, cache_dir=tmp_path / "cache")
    assert again.config.hidden_size == SMALL.hidden_size
    # Cached: a second load never touches the store.
    assert fetch_base(TINY_REPO, revision, store=_Unreachable(), cache_dir=tmp_path / "cache").is_dir()
    assert load_base(TINY_REPO, _Unreachable(), revision=revision, cache_dir=tmp_path / "cache")[0] is not None


def test_disallowed_files_are_never_fetched(model_dir, tmp_path):
    store = LocalStore(tmp_path / "store")
    extra = {"pytorch_model.bin": b"\x80\x04pickle", "modeling_evil.py": b"import os", "bootstrap.json": b"{}",
             "original/consolidated.00.pth": b"\x80\x04"}
    revision = publish(store, model_dir, extra)
    path = fetch_base(TINY_REPO, revision, store, cache_dir=tmp_path / "cache")
    fetched = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    assert fetched == sorted(p.name for p in model_dir.iterdir())
    load_base(BaseModelRef(repo=TINY_REPO, revision=revision), store, cache_dir=tmp_path / "cache")


def test_refuses_pickled_weights_and_remote_code(model_dir, tmp_path):
    store = LocalStore(tmp_path / "store")
    pickled = publish(store, model_dir, {"pytorch_model.bin": b"\x80\x04"}, drop=["model.safetensors"])
    with pytest.raises(BaseModelError, match="no safetensors weights"):
        load_base(BaseModelRef(repo=TINY_REPO, revision=pickled), store, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "cortex--tiny-llama" / pickled).exists()  # nothing half-cached
    config = json.loads((model_dir / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.LlamaForCausalLM"}
    remote = publish(store, model_dir, {"config.json": json.dumps(config).encode()})
    with pytest.raises(BaseModelError, match="custom code"):
        load_base(BaseModelRef(repo=TINY_REPO, revision=remote), store, cache_dir=tmp_path / "cache")
    with pytest.raises(BaseModelError, match="no tokenizer.json"):
        bare = tmp_path / "bare"
        shutil.copytree(model_dir, bare)
        (bare / "tokenizer.json").unlink()
        check_model_dir(bare)


def test_byte_limit(model_dir, tmp_path):
    store = LocalStore(tmp_path / "store")
    revision = publish(store, model_dir)
    with pytest.raises(TooLarge):
        load_base(BaseModelRef(repo=TINY_REPO, revision=revision), store, cache_dir=tmp_path / "c", max_bytes=1000)
    assert not (tmp_path / "c" / "cortex--tiny-llama" / revision).exists()


class _Unreachable:
    """A store that is offline."""

    def list_files(self, repo_id, revision):
        raise StoreUnavailable("https://huggingface.co kept failing after 5 retries (ConnectError)")

    download = list_files


def test_clear_errors_offline_and_unpinned(tmp_path, monkeypatch):
    ref = BaseModelRef(repo="meta-llama/Llama-3.3-70B-Instruct", revision="6f6073b423013f6a7d4d9f39144961bfbfbc386b")
    with pytest.raises(BaseModelError, match="cannot download the base meta-llama/Llama-3.3-70B-Instruct@6f6073b42301.*offline"):
        load_base(ref, _Unreachable(), cache_dir=tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BaseModelError, match="HF_HUB_OFFLINE is set"):
        load_base(ref, cache_dir=tmp_path)
    with pytest.raises(BaseModelError, match="pinned commit sha or content hash.*base pointer"):
        load_base(CORTEX_TINY.base, LocalStore(tmp_path / "s"), cache_dir=tmp_path)
    with pytest.raises(BaseModelError, match="pinned"):
        load_base("cortex/tiny-llama", LocalStore(tmp_path / "s"), revision="main", cache_dir=tmp_path)
    with pytest.raises(BaseModelError, match="neither a model folder"):
        load_base(str(tmp_path / "missing"))
    assert issubclass(BaseModelError, CortexError)


def test_dtype_choice():
    assert default_dtype("cpu") == torch.float32
    assert default_dtype("meta") == torch.bfloat16


def test_one_device_policy():
    """CPU: float32 in place. CUDA: bf16 spread over every visible GPU, or pinned to one; overrides win."""
    assert device_map("cpu") is None
    assert device_map("cuda") == "auto" and device_map("cuda:1") == {"": "cuda:1"}
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cuda:0") == "cuda:0"
    assert parse_dtype("auto") is None and parse_dtype("bfloat16") == torch.bfloat16
    with pytest.raises(BaseModelError, match="dtype must be"):
        parse_dtype("int4")


def test_dtype_override(model_dir):
    model, _ = load_base(model_dir, device="cpu", dtype="bfloat16")
    assert model.dtype == torch.bfloat16 and not model.training
    assert load_base(model_dir, device="cpu")[0].dtype == torch.float32
