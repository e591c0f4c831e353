"""The tiny base's tokenizer: byte-level round trips, determinism, the chat template and its mask."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer
from trl.chat_template_utils import has_generation_markers, is_chat_template_stop_token_trained

from cortex.model.pretrain import IGNORE, encode_chat, token_lengths
from cortex.model.tokenizer import BOS, EOS, FORMAT_TOKENS, PAD, ROLE_TOKENS, chat_corpus, train_tokenizer

ANSWER = '<think>BTC rose +2.4% over the week.</think><answer>{"asset": "BTC", "horizon_days": 7, ' \
         '"direction": "up", "p_up": 0.61, "return_pct": 1.25}</answer>'
CHATS = [
    [
        {"role": "system", "content": "You are Cortex, a crypto market analyst."},
        {"role": "user", "content": f"BTC daily data up to 2024-0{i % 9 + 1}-1{i % 10} (UTC).\n"
                                    f"day close ret% vol%\n0{i % 9 + 1} {23000 + 37 * i} +{i % 5}.{i % 7} -{i % 30}"},
        {"role": "assistant", "content": ANSWER.replace("2.4", f"{i % 4}.{i % 9}")},
    ]
    for i in range(60)
]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(chat_corpus(CHATS), vocab_size=600)


@pytest.mark.parametrize("text", [
    "BTC closed at 107,238.51 on 2025-06-30 (-3.7%).",
    json.dumps({"asset": "ETH", "horizon_days": 1, "p_up": 0.5, "return_pct": -12.034}),
    "Ünïcödé — 比特币 上涨 🚀 ½ ∞ \u200b zero-width",
    "tabs\tand\r\nwindows lines\n\n  double  spaces ",
    ANSWER,
    "",
])
def test_round_trips_any_text(tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert tok.unk_token_id is None  # byte-level: nothing is ever unknown


def test_special_and_format_tokens(tok):
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (BOS, EOS, PAD)
    assert tok.convert_tokens_to_ids([PAD, BOS, EOS, *ROLE_TOKENS]) == [0, 1, 2, 3, 4, 5]
    for tag in FORMAT_TOKENS:  # one token each, and kept by decode(skip_special_tokens=True)
        ids = tok(tag, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and tok.decode(ids, skip_special_tokens=True) == tag
    pieces = tok.backend_tokenizer.pre_tokenizer.pre_tokenize_str("BTC 12345.6\nup")
    # digit groups of at most three, upper-case tickers and line breaks are pieces of their own
    assert [piece for piece, _ in pieces] == ["BTC", "Ġ", "123", "45", ".", "6", "Ċ", "up"]


def test_training_is_deterministic(tok):
    again = train_tokenizer(chat_corpus(CHATS), vocab_size=600)
    assert again.backend_tokenizer.to_str() == tok.backend_tokenizer.to_str()


def test_chat_template_renders_roles_and_generation_prompt(tok):
    text = tok.apply_chat_template(CHATS[0][:2], tokenize=False, add_generation_prompt=True)
    assert text.startswith(BOS + "<|system|>\nYou are Cortex")
    assert "<|end|>\n<|user|>\nBTC daily data" in text
    assert text.endswith("<|end|>\n<|assistant|>\n")
    full = tok.apply_chat_template(CHATS[0], tokenize=False)
    assert full.startswith(text) and full.endswith(ANSWER.replace("2.4", "0.0") + EOS + "\n")
    with pytest.raises(Exception, match="roles are system, user and assistant"):
        tok.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_assistant_mask_covers_the_answer_and_the_stop_token(tok):
    out = tok.apply_chat_template(CHATS[3], tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    masked = [i for i, m in zip(ids, mask) if m]
    assert tok.decode(masked) == CHATS[3][2]["content"] + EOS
    prompt = tok.apply_chat_template(CHATS[3][:2], tokenize=True, return_dict=True, add_generation_prompt=True)
    n = len(prompt["input_ids"])
    assert ids[:n] == prompt["input_ids"] and not any(mask[:n]) and mask[n] == 1
    # What TRL's SFTTrainer(assistant_only_loss=True) checks before it trusts a template.
    assert has_generation_markers(tok.chat_template)
    assert is_chat_template_stop_token_trained(tok)


def test_encode_chat_labels_only_the_assistant(tok):
    ids, labels = encode_chat(tok, CHATS[5], max_length=4096)
    kept = [i for i, label in zip(ids, labels) if label != IGNORE]
    assert kept == [label for label in labels if label != IGNORE]
    assert tok.decode(kept) == CHATS[5][2]["content"] + EOS
    with pytest.raises(ValueError, match="no assistant tokens"):
        encode_chat(tok, CHATS[5][:2], max_length=4096)
    lengths = token_lengths(tok, CHATS[:10])
    assert lengths["conversations"] == 10 and lengths["prompt"]["min"] > 0
    assert lengths["total"]["max"] <= lengths["prompt"]["max"] + lengths["completion"]["max"]


def test_saves_in_the_standard_format(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    assert {"tokenizer.json", "tokenizer_config.json"} <= {p.name for p in tmp_path.iterdir()}
    loaded = AutoTokenizer.from_pretrained(tmp_path, trust_remote_code=False)
    assert loaded.chat_template == tok.chat_template
    assert loaded.apply_chat_template(CHATS[1], tokenize=False) == tok.apply_chat_template(CHATS[1], tokenize=False)
    assert loaded(ANSWER, add_special_tokens=False)["input_ids"] == tok(ANSWER, add_special_tokens=False)["input_ids"]
    assert (loaded.bos_token_id, loaded.eos_token_id, loaded.pad_token_id) == (1, 2, 0)


@pytest.mark.slow
def test_trl_sft_trains_on_the_assistant_tokens_only(tok, tmp_path):
    """TRL's SFTTrainer(assistant_only_loss=True) on `messages` rows trusts the tiny template's markers
    (the miner itself masks by prompt/completion, for templates without markers: miner/sft.py)."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    from cortex.model.tiny import TinyConfig, build_model

    small = TinyConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                       intermediate_size=64, max_position_embeddings=256)
    args = SFTConfig(output_dir=str(tmp_path), assistant_only_loss=True, max_steps=1, per_device_train_batch_size=2,
                     report_to=[], use_cpu=True, save_strategy="no")
    rows = datasets.Dataset.from_list([{"messages": chat} for chat in CHATS[:4]])
    trainer = SFTTrainer(model=build_model(small, tok), args=args, train_dataset=rows, processing_class=tok)
    row = trainer.train_dataset[0]
    trained = [i for i, label in zip(row["input_ids"], row["labels"]) if label != IGNORE]
    assert tok.decode(trained) == CHATS[0][2]["content"].replace("2.4", "0.0") + EOS
    trainer.train()
