"""The tiny Llama: deterministic from a seed, sized by the tokenizer, trainable on assistant tokens."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaForCausalLM

from cortex.model.pretrain import PretrainConfig, assistant_loss, collate, encode_chat, learning_rate, pretrain
from cortex.model.tiny import TinyConfig, build_model, llama_config, parameter_count
from cortex.model.tokenizer import chat_corpus, train_tokenizer

SMALL = TinyConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                   intermediate_size=64, max_position_embeddings=256)
CHATS = [
    [{"role": "user", "content": f"asset {a} horizon {h}"},
     {"role": "assistant", "content": f'<think>ok</think><answer>{{"asset": "{a}", "horizon_days": {h}}}</answer>'}]
    for a in ("BTC", "ETH", "SOL") for h in (1, 7)
]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(chat_corpus(CHATS * 3), vocab_size=520)


def test_same_seed_same_weights(tok):
    a, b, c = build_model(SMALL, tok, seed=1), build_model(SMALL, tok, seed=1), build_model(SMALL, tok, seed=2)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_build_leaves_the_global_rng_alone(tok):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model(SMALL, tok, seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_config_follows_the_tokenizer(tok):
    config = llama_config(SMALL, tok)
    assert config.vocab_size % 64 == 0 and config.vocab_size >= len(tok)
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (1, 2, 0)
    model = build_model(SMALL, tok)
    assert isinstance(model, LlamaForCausalLM) and model.config.tie_word_embeddings
    assert model.generation_config.eos_token_id == tok.eos_token_id and not model.generation_config.do_sample
    assert model.dtype == torch.float32
    assert parameter_count(model) == sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="divisible"):
        TinyConfig(hidden_size=30, num_attention_heads=4)


def test_default_size():
    """The shipped architecture: about 3.4M parameters with a ~2k vocabulary."""
    cfg = TinyConfig()
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads,
            cfg.intermediate_size) == (256, 4, 4, 2, 688)
    assert cfg.max_position_embeddings >= 1024


def test_assistant_loss_matches_the_model_loss(tok):
    model = build_model(SMALL, tok, seed=0)
    batch = collate([encode_chat(tok, c, 128) for c in CHATS[:3]], tok.pad_token_id)
    assert torch.allclose(assistant_loss(model, batch), model(**batch).loss, atol=1e-5)


def test_schedule_warms_up_then_decays():
    cfg = PretrainConfig(steps=100, warmup_steps=10, learning_rate=1e-3, min_lr_ratio=0.1)
    lrs = [learning_rate(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] >= 1e-4 - 1e-12


def test_pretraining_lowers_the_loss_and_is_deterministic(tok):
    cfg = PretrainConfig(steps=30, batch_size=4, learning_rate=1e-2, warmup_steps=3, log_every=5)
    runs = []
    for _ in range(2):
        model = build_model(SMALL, tok, seed=0)
        curve = pretrain(model, tok, CHATS, cfg, progress=False)
        runs.append((curve, model.state_dict()))
    (curve, weights), (curve2, weights2) = runs
    assert curve[-1]["loss"] < curve[0]["loss"] and len(curve) == 6
    assert curve == curve2 and all(torch.equal(weights[k], weights2[k]) for k in weights)


def test_relabel_assets_renames_consistently_and_keeps_btc():
    from cortex.model.pretrain import relabel_assets

    system = {"role": "system", "content": 'answer as {"asset": "BTC"}; SOL is an example'}
    chats = [[system, {"role": "user", "content": f"{a} daily data, vs BTC (asset {a}, horizon_days 1). SOLAR"},
              {"role": "assistant", "content": f'<think>{a} closed at 1.</think><answer>{{"asset": "{a}"}}</answer>'}]
             for a in ("BTC", "SOL", "NEAR", "ETH") * 25]
    assets = [c[1]["content"].split()[0] for c in chats]
    out = relabel_assets(chats, assets, fraction=0.5, seed=1)
    assert out == relabel_assets(chats, assets, fraction=0.5, seed=1)
    assert relabel_assets(chats, assets, fraction=0.0, seed=1) == chats
    renamed = 0
    for before, after, asset in zip(chats, out, assets):
        assert after[0] == system
        new = after[1]["content"].split()[0]
        if asset == "BTC":
            assert after == before
        assert "vs BTC" in after[1]["content"] and after[1]["content"].endswith("SOLAR")
        assert f"(asset {new}," in after[1]["content"] and f'{{"asset": "{new}"}}' in after[2]["content"]
        assert new != "BTC" or asset == "BTC"
        renamed += new != asset
    assert 25 <= renamed <= 50
