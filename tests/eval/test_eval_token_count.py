"""New tokens are counted from the generation itself (issue 24): up to and including a row's first EOS,
never by comparing with the pad id, which a model may emit as an ordinary token."""

from __future__ import annotations

import pytest
import torch

from cortex.data import build_samples, get_source
from cortex.eval.generate import Generator, eos_ids, evaluate, generated_lengths
from cortex.model.tiny import TinyConfig, build_model
from cortex.model.tokenizer import chat_corpus, train_tokenizer

TINY = TinyConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=64)
NEW = 6


@pytest.fixture(scope="module")
def world():
    frames = get_source("synthetic:3").load(["BTC"], "2023-01-01", "2023-03-31")
    samples = build_samples(frames, ["BTC"], [1], start="2023-03-01", end="2023-03-05")
    tokenizer = train_tokenizer(chat_corpus(s.prompt for s in samples), vocab_size=600)
    return tokenizer, [s.row() for s in samples[:3]]


def always(tokenizer, token_id: int) -> torch.nn.Module:
    """A tiny model whose every greedy step emits ``token_id``: its output layer is a bias towards it."""
    model = build_model(TINY, tokenizer, seed=0)
    head = torch.nn.Linear(TINY.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[token_id] = 10.0
    model.lm_head = head
    return model.eval()


def test_lengths_run_to_the_first_eos_and_ignore_pad_ids():
    pad, eos = 0, 9
    generated = torch.tensor([[5, pad, 7, eos, pad, pad],  # the model emitted the pad id, then ended
                              [pad, pad, pad, pad, pad, pad],  # only pad ids, no EOS: all six are new tokens
                              [eos, pad, pad, pad, pad, pad],
                              [3, 4, eos, eos, pad, pad]])
    assert generated_lengths(generated, {eos}) == [4, 6, 1, 3]
    assert generated_lengths(generated, {eos, 7}) == [3, 6, 1, 3]  # any of the model's EOS ids ends a row
    assert generated_lengths(generated, set()) == [6] * 4
    assert generated_lengths(generated[:, :0], {eos}) == [0] * 4


def test_a_model_that_emits_the_pad_id_gets_every_token_counted(world):
    tokenizer, rows = world
    assert tokenizer.pad_token_id not in eos_ids(build_model(TINY, tokenizer, seed=0), tokenizer)
    generator = Generator(always(tokenizer, tokenizer.pad_token_id), tokenizer, max_new_tokens=NEW, batch_size=2)
    result = evaluate(generator, rows, key="pad-emitter")
    assert result.reason is None
    assert result.new_tokens == NEW * len(rows)  # the pad-id comparison counted 0 here
    texts, per_key = generator.generate_mixed([r["prompt"] for r in rows], [None])[None]
    assert per_key == NEW * len(rows) and len(texts) == len(rows)


def test_a_row_that_ends_counts_its_eos_and_nothing_after(world):
    tokenizer, rows = world
    generator = Generator(always(tokenizer, tokenizer.eos_token_id), tokenizer, max_new_tokens=NEW, batch_size=3)
    result = evaluate(generator, rows, key="eos-emitter")
    assert result.new_tokens == len(rows)  # one token each: the EOS that ended the row
    assert result.completions == [""] * len(rows)
