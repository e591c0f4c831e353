"""The tiny base's tokenizer: byte-level BPE trained with `tokenizers` on the prompt corpus.

Byte-level, so any text (digits, JSON, unicode) round-trips exactly. Numbers are split into
digit groups of at most three (as Llama 3 does); tickers and lines are kept apart; between them BPE may
merge across spaces, up to ``MAX_TOKEN_CHARS`` characters. On this narrow, templated corpus that
learns phrase tokens (`` over the week and +``), which more than halves the sequence length
against word-level pre-tokenization: the tiny model pre-trains in minutes on a CPU and a teacher's
answer fits the ``cortex-tiny`` competition's generation budget.
The chat template renders ``system``/``user``/``assistant`` turns between role markers and
``<|end|>``; the assistant's content and its ``<|end|>`` sit inside ``{% generation %}`` so
``apply_chat_template(..., return_assistant_tokens_mask=True)`` (and TRL's
``assistant_only_loss``) trains exactly the tokens the model must write, including the stop token.
"""

from __future__ import annotations

from typing import Iterable

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

BOS, EOS, PAD = "<|begin|>", "<|end|>", "<|pad|>"
ROLES = ("system", "user", "assistant")
ROLE_TOKENS = tuple(f"<|{role}|>" for role in ROLES)
SPECIAL_TOKENS = (PAD, BOS, EOS, *ROLE_TOKENS)  # ids 0..5, in this order
# The answer format's tags: whole tokens, but ordinary text (decode keeps them).
FORMAT_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")
DEFAULT_VOCAB = 4096  # an upper bound: BPE stops earlier when no pair occurs twice
MAX_TOKEN_CHARS = 32
# Isolated: digit groups, upper-case runs (tickers: BTC, NEAR) and line breaks are tokens of their
# own, so an asset or a number reads as the same token in the prompt and in the answer.
SPLIT = r"\p{N}{1,3}|\p{Lu}{2,}|\r?\n"

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('roles are system, user and assistant, got ' + message['role']) }}"
    "{% endif %}"
    "{{ '<|' + message['role'] + '|>\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}"
    "{% else %}"
    "{{ message['content'] }}<|end|>"
    "{% endif %}"
    "{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def _backend(vocab_size: int, corpus: Iterable[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(FORMAT_TOKENS),
        min_frequency=2,
        max_token_length=MAX_TOKEN_CHARS,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte: nothing is ever unknown
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in FORMAT_TOKENS])
    return tok


def train_tokenizer(corpus: Iterable[str], vocab_size: int = DEFAULT_VOCAB) -> PreTrainedTokenizerFast:
    """Train on ``corpus`` (an iterable of texts) and wrap as a Hugging Face fast tokenizer.

    Deterministic for a given corpus: BPE merges are chosen by count, ties by the pair's ids.
    """
    if vocab_size < 512:
        raise ValueError(f"vocab_size must be at least 512 (256 bytes + merges), got {vocab_size}")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=_backend(vocab_size, corpus),
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=list(ROLE_TOKENS),
        clean_up_tokenization_spaces=False,
        model_max_length=2048,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"  # decoder-only generation pads on the left
    return fast


def chat_corpus(conversations: Iterable[list[dict[str, str]]]) -> Iterable[str]:
    """The texts a tokenizer learns from: every message's content, one text each."""
    for messages in conversations:
        for message in messages:
            yield message["content"]
