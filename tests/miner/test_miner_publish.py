"""Publishing on the embedded chain and a local store: checks first, private upload, commit, verify,
public; idempotent; a failed commitment leaves the repo private and says why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from chainkit import NETUID, make_chain
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from cortex.chain.commitments import read_all
from cortex.hub.local import LocalStore
from cortex.protocol.competition import CORTEX_TINY, LLAMA_TARGETS, AdapterLimits
from cortex.protocol.hashing import content_hash
from miner.config import TrainConfig
from miner.publish import (
    PublishError,
    check_limits,
    fetch_previous,
    model_card,
    on_chain,
    publish_adapter,
    stage_upload,
)

BASE_REV = "ab" * 32


@pytest.fixture(scope="module")
def base_and_adapter(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pub")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    model = LlamaForCausalLM(config)
    model.save_pretrained(root / "base")
    model = LlamaForCausalLM.from_pretrained(root / "base")  # peft names the base folder, as training does
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=list(LLAMA_TARGETS), use_dora=True,
                                               task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.01)  # a trained-looking adapter
    peft.save_pretrained(root / "adapter")
    return root / "base", root / "adapter"


def upload_folder(tmp_path: Path, base_and_adapter, competition=CORTEX_TINY) -> Path:
    _, adapter = base_and_adapter
    card = model_card(competition, "cortex/tiny-llama", BASE_REV, TrainConfig(lora_rank=4),
                      {"source": "synthetic", "synthetic": True, "assets": ["BTC"], "horizons": [7],
                       "teacher": "analyst", "rows": {"train": 10}}, {"heldout_reward_adapter": 0.3,
                                                                       "heldout_reward_base": 0.1})
    return stage_upload(adapter, tmp_path / "upload", card, "cortex/tiny-llama", BASE_REV)


def test_upload_folder_and_card(tmp_path, base_and_adapter):
    folder = upload_folder(tmp_path, base_and_adapter)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "adapter_config.json", "adapter_model.safetensors"]
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "cortex/tiny-llama" and config["revision"] == BASE_REV
    card = (folder / "README.md").read_text()
    for text in ("cortex-tiny", "cortex/tiny-llama", BASE_REV, "SYNTHETIC", "heldout_reward_adapter | 0.3", "analyst"):
        assert text in card
    checked = check_limits(folder, base_and_adapter[0], CORTEX_TINY)
    assert checked.adapter_type == "dora" and checked.rank == 4 and checked.content_hash == content_hash(folder)


def test_adapter_over_the_limits_is_refused_before_upload(tmp_path, base_and_adapter):
    strict = CORTEX_TINY.__class__(**{**CORTEX_TINY.__dict__, "adapters": AdapterLimits(("lora",), 2, ("q_proj",), 1 << 20)})
    folder = upload_folder(tmp_path, base_and_adapter, strict)
    with pytest.raises(PublishError, match=r"not uploading: validators would reject this adapter \(adapter_type\)"):
        check_limits(folder, base_and_adapter[0], strict)


def test_publish_commit_verify_public_and_idempotent(tmp_path, base_and_adapter):
    c = make_chain(tmp_path, tempo=10)
    miner = c.register("miner")
    store = LocalStore(tmp_path / "store")
    folder = upload_folder(tmp_path, base_and_adapter)
    asked = []
    refused = publish_adapter(c.sub, miner, NETUID, store, "miner/cortex-tiny", folder, CORTEX_TINY,
                              gate=lambda: asked.append(1) or False)
    assert refused is None and asked == [1] and not (tmp_path / "store" / "miner").exists()  # the gate said no
    published = publish_adapter(c.sub, miner, NETUID, store, "miner/cortex-tiny", folder, CORTEX_TINY,
                                gate=lambda: asked.append(2) or True)
    assert not published.already and store.exists("miner/cortex-tiny", published.revision) and asked == [1, 2]
    assert not store.is_private("miner/cortex-tiny")
    [record] = read_all(c.sub, NETUID)
    assert record.commitment == published.commitment and record.block == published.block
    assert record.commitment.verify(content_hash(folder), miner.hotkey.ss58_address)
    c.advance(2)
    again = publish_adapter(c.sub, miner, NETUID, store, "miner/cortex-tiny", folder, CORTEX_TINY,
                            gate=lambda: asked.append(3) or True)
    assert again.already and again.block == published.block and asked == [1, 2]  # already on chain: no gate
    with c.chain.chain.read() as s:
        sent = s.conn.execute("SELECT COUNT(*) FROM extrinsics WHERE function='set_commitment'").fetchone()[0]
    assert sent == 1  # the second run committed nothing
    # the last published adapter comes back for the publish gate, when it is for the same base
    previous = fetch_previous(c.sub, NETUID, miner.hotkey.ss58_address, store, CORTEX_TINY, BASE_REV, tmp_path / "prev")
    assert previous is not None and (previous / "adapter_model.safetensors").is_file()
    assert fetch_previous(c.sub, NETUID, miner.hotkey.ss58_address, store, CORTEX_TINY, "cd" * 32, tmp_path / "p2") is None


def test_failed_commitment_leaves_the_repo_private(tmp_path, base_and_adapter):
    c = make_chain(tmp_path)
    stranger = c.wallet("stranger")  # not registered: the chain refuses its commitment
    store = LocalStore(tmp_path / "store")
    folder = upload_folder(tmp_path, base_and_adapter)
    with pytest.raises(PublishError, match="AccountNotAllowedCommit.*stays private"):
        publish_adapter(c.sub, stranger, NETUID, store, "stranger/cortex-tiny", folder, CORTEX_TINY)
    assert store.is_private("stranger/cortex-tiny")
    assert on_chain(c.sub, NETUID, stranger.hotkey.ss58_address) is None


def test_repo_id_too_long_for_a_commitment(tmp_path, base_and_adapter):
    c = make_chain(tmp_path)
    miner = c.register("miner")
    store = LocalStore(tmp_path / "store")
    folder = upload_folder(tmp_path, base_and_adapter)
    with pytest.raises(PublishError, match="not uploading: .*128-byte limit"):
        publish_adapter(c.sub, miner, NETUID, store, "m/" + "x" * 80, folder, CORTEX_TINY)
    assert not (tmp_path / "store" / "m").exists()


def test_space_limit_waits_for_the_next_epoch(tmp_path, base_and_adapter):
    """Two adapters in one epoch exceed the per-epoch commitment space: the second waits and retries."""
    import threading
    import time

    c = make_chain(tmp_path, tempo=5, commitment_max_space=150)  # room for one commitment per epoch
    miner = c.register("miner")
    store = LocalStore(tmp_path / "store")
    first = publish_adapter(c.sub, miner, NETUID, store, "miner/a", upload_folder(tmp_path / "a", base_and_adapter),
                            CORTEX_TINY)
    second_folder = upload_folder(tmp_path / "b", base_and_adapter)
    (second_folder / "README.md").write_text("a retrained adapter\n")

    def blocks() -> None:  # the chain moves on while the miner waits
        for _ in range(20):
            time.sleep(0.5)
            c.advance(1)

    threading.Thread(target=blocks, daemon=True).start()
    second = publish_adapter(c.sub, miner, NETUID, store, "miner/b", second_folder, CORTEX_TINY, retry_s=60)
    assert second.block > first.block and on_chain(c.sub, NETUID, miner.hotkey.ss58_address) == second.commitment
    assert not store.is_private("miner/b")


def test_rate_limited_commitment_is_retried(tmp_path, base_and_adapter, monkeypatch):
    """A refusal is retried by its error code (``bt.ErrorCode.RATE_LIMITED``), not by its text."""
    import bittensor as bt

    from cortex.chain.commitments import CommitFailed
    from miner import publish as P

    c = make_chain(tmp_path)
    miner = c.register("miner")
    real, calls = P.commit, []

    def flaky(sub, wallet, netuid, commitment, **kw):
        calls.append(sub.block)
        if len(calls) == 1:
            raise CommitFailed("the chain refused the commitment: too soon", bt.ErrorCode.RATE_LIMITED)
        return real(sub, wallet, netuid, commitment, **kw)

    monkeypatch.setattr(P, "commit", flaky)
    monkeypatch.setattr(c.sub, "wait_for_block", lambda block, timeout=None: c.advance(block - c.sub.block))
    published = publish_adapter(c.sub, miner, NETUID, LocalStore(tmp_path / "store"), "miner/x",
                                upload_folder(tmp_path, base_and_adapter), CORTEX_TINY)
    assert len(calls) == 2 and calls[1] >= calls[0] + 5 and published.block == calls[1]


def test_other_refusals_are_not_retried_whatever_their_text(tmp_path, base_and_adapter, monkeypatch):
    import bittensor as bt

    from cortex.chain.commitments import CommitFailed
    from miner import publish as P

    c = make_chain(tmp_path)
    miner = c.register("miner")
    calls = []

    def refused(sub, wallet, netuid, commitment, **kw):
        calls.append(sub.block)
        raise CommitFailed("the chain refused the commitment: RateLimit in the text", bt.ErrorCode.NOT_AUTHORIZED)

    monkeypatch.setattr(P, "commit", refused)
    with pytest.raises(PublishError, match="RateLimit in the text.*stays private"):
        publish_adapter(c.sub, miner, NETUID, LocalStore(tmp_path / "store"), "miner/x",
                        upload_folder(tmp_path, base_and_adapter), CORTEX_TINY)
    assert len(calls) == 1
