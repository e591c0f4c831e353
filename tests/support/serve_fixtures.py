"""A tiny base built in code for the serve and export tests: a random tiny Llama whose tokenizer is trained
on a few weeks of prompts (seconds to build), so every engine meets the project's real prompts and tokens."""

from __future__ import annotations

from pathlib import Path

from cortex.data import get_source

SOURCE = get_source("synthetic")


def tiny_base(out: Path, seed: int) -> Path:
    """A random tiny Llama with a tokenizer trained on a few weeks of prompts (seconds to build)."""
    from cortex.data import build_samples
    from cortex.model.tiny import TinyConfig, build_model
    from cortex.model.tokenizer import chat_corpus, train_tokenizer

    frames = SOURCE.load(["BTC", "ETH"], "2024-01-01", "2024-06-30")
    samples = build_samples(frames, ["BTC", "ETH"], [1, 7], start="2024-05-01", end="2024-05-20")
    tok = train_tokenizer(chat_corpus([s.prompt for s in samples]), vocab_size=600)
    cfg = TinyConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                     intermediate_size=64, max_position_embeddings=2048)
    model = build_model(cfg, tok, seed=seed)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
