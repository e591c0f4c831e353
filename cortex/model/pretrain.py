"""Brief full fine-tuning of the tiny base on chat text, and a check that it answers in format.

The loss covers the assistant's tokens only (the chat template's ``{% generation %}`` span,
``<|end|>`` included), the way TRL's ``assistant_only_loss`` computes it. A plain torch loop
(AdamW, linear warm-up, cosine decay, gradient clipping) keeps each step's work visible and
deterministic on CPU for a fixed seed and thread count.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from cortex.reward import score

log = logging.getLogger(__name__)
IGNORE = -100
# Tickers a relabelled chat may take: the csv market's assets. Never BTC: it is the reference every
# other asset's prompt compares against ("vs BTC"), so a chat renamed to BTC would contradict itself.
TICKERS = ("ETH", "SOL", "NEAR", "BNB", "XRP", "ADA", "DOGE", "AVAX", "DOT", "LINK", "LTC")


@dataclass(frozen=True)
class PretrainConfig:
    steps: int = 120
    batch_size: int = 8
    learning_rate: float = 3e-3
    min_lr_ratio: float = 0.1  # the cosine decays to this fraction of the peak
    warmup_steps: int = 10
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    max_length: int = 1024
    seed: int = 0
    log_every: int = 5
    # Sequence-length warm-up: early steps keep only the last ``min_context`` tokens before the
    # answer, growing linearly to ``max_context`` at step ``context_warmup_steps`` (0: off), then all.
    min_context: int = 32
    max_context: int = 512
    context_warmup_steps: int = 0
    # Loss weight of the tokens from ``<answer>`` on (the JSON that must parse: asset, horizon, numbers)
    # against 1 for the reasoning: the answer is a fifth of a completion's tokens but all of its format.
    answer_weight: float = 1.0
    # Loss weight of ticker tokens (an upper-case run: BTC, NEAR) in the answer: the asset the prompt names,
    # which a small model otherwise guesses from the price level instead of reading it.
    name_weight: float = 1.0


def relabel_assets(conversations: Sequence[list[dict[str, str]]], assets: Sequence[str], fraction: float,
                   seed: int, tickers: Sequence[str] = TICKERS,
                   include_btc: bool = False) -> list[list[dict[str, str]]]:
    """Copies of the chats where a ``fraction`` of them name another ticker throughout (BTC's chats
    only with ``include_btc``).

    Prices identify an asset only by accident (the synthetic SOL and NEAR trade in the same range),
    and a model that learns that shortcut writes the wrong asset and fails to parse. Renaming the
    asset consistently in the user and assistant messages leaves the prompt as the only evidence,
    so the model learns to copy it, and not the system prompt's example answer (which names BTC).
    """
    rng = random.Random(seed)
    out = []
    for chat, asset in zip(conversations, assets):
        if (asset == "BTC" and not include_btc) or rng.random() >= fraction:
            out.append(chat)
            continue
        new = rng.choice([t for t in tickers if t != asset])
        word = re.compile(rf"\b{re.escape(asset)}\b")
        out.append([m if m["role"] == "system" else {**m, "content": word.sub(new, m["content"])} for m in chat])
    return out


def encode_chat(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]],
                max_length: int) -> tuple[list[int], list[int]]:
    """(input ids, labels): labels are the ids on assistant tokens and ``IGNORE`` elsewhere."""
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
    if not any(mask):
        raise ValueError("the conversation has no assistant tokens to learn from")
    labels = [i if m else IGNORE for i, m in zip(ids, mask)]
    return ids[:max_length], labels[:max_length]


def context_length(step: int, cfg: PretrainConfig) -> int | None:
    """How many prompt tokens step ``step`` keeps before the first answer token (None: all)."""
    if step >= cfg.context_warmup_steps:
        return None
    return cfg.min_context + (cfg.max_context - cfg.min_context) * step // cfg.context_warmup_steps


def tail(example: tuple[list[int], list[int]], context: int | None) -> tuple[list[int], list[int]]:
    """Drop all but the last ``context`` tokens before the first labelled one."""
    ids, labels = example
    first = next(i for i, label in enumerate(labels) if label != IGNORE)
    start = 0 if context is None else max(0, first - context)
    return ids[start:], labels[start:]


def collate(batch: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch of (ids, labels) into tensors."""
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        attention[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def assistant_loss(model: PreTrainedModel, batch: dict[str, torch.Tensor], answer_id: int | None = None,
                   answer_weight: float = 1.0, token_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean next-token cross-entropy over labelled positions, as ``model(labels=...)`` computes it,
    with the output layer applied to those positions only (a third of a chat's tokens).

    With ``answer_id`` and ``answer_weight`` != 1, labels from the first ``answer_id`` on weigh
    ``answer_weight`` each, and ``token_weights`` (one weight per vocabulary id) multiplies each label's
    weight by its token's (a weighted mean)."""
    hidden = model.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    labels = batch["labels"][:, 1:]
    keep = labels != IGNORE
    logits = model.get_output_embeddings()(hidden[:, :-1][keep])
    if (answer_id is None or answer_weight == 1.0) and token_weights is None:
        return torch.nn.functional.cross_entropy(logits.float(), labels[keep])
    weights = torch.ones_like(labels, dtype=torch.float)
    if answer_id is not None:
        weights = torch.where(torch.cumsum((labels == answer_id).long(), dim=1) > 0, answer_weight, 1.0)
    weights = weights[keep]
    if token_weights is not None:
        weights = weights * token_weights[labels[keep]]
    losses = torch.nn.functional.cross_entropy(logits.float(), labels[keep], reduction="none")
    return (losses * weights).sum() / weights.sum()


def name_weights(tokenizer: PreTrainedTokenizerBase, weight: float) -> torch.Tensor:
    """One loss weight per vocabulary id: ``weight`` for ticker tokens (an upper-case run of 2+ letters), else 1."""
    size = max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)
    out = torch.ones(size)
    for i in range(size):
        if re.fullmatch(r"[A-Z]{2,}", tokenizer.decode([i]).strip()):
            out[i] = weight
    return out


def learning_rate(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up to the peak, then cosine decay to ``min_lr_ratio`` of it."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, (step - cfg.warmup_steps) / span)))
    return cfg.learning_rate * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def _order(n: int, seed: int) -> Iterator[int]:
    """Indices 0..n-1 in a seeded random order, reshuffled each epoch."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield from torch.randperm(n, generator=generator).tolist()


def _optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(0.9, 0.95), eps=1e-8, foreach=False)


def pretrain(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
             conversations: Sequence[list[dict[str, str]]], cfg: PretrainConfig,
             progress: bool = True) -> list[dict[str, float]]:
    """Train ``model`` in place on ``conversations``; returns the loss curve (step, loss, lr)."""
    if not conversations:
        raise ValueError("no training conversations")
    torch.manual_seed(cfg.seed)
    order = _order(len(conversations), cfg.seed)
    optimizer = _optimizer(model, cfg)
    model.train()
    curve: list[dict[str, float]] = []
    window: list[float] = []
    answer_id = tokenizer.convert_tokens_to_ids("<answer>") if cfg.answer_weight != 1.0 else None
    token_weights = name_weights(tokenizer, cfg.name_weight) if cfg.name_weight != 1.0 else None
    bar = tqdm(range(cfg.steps), desc="pre-train", unit="step", disable=not progress)
    for step in bar:
        context = context_length(step, cfg)
        batch = [tail(encode_chat(tokenizer, conversations[next(order)], cfg.max_length), context)
                 for _ in range(cfg.batch_size)]
        lr = learning_rate(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = assistant_loss(model, collate(batch, tokenizer.pad_token_id), answer_id, cfg.answer_weight,
                              token_weights)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"pre-training diverged at step {step} (loss {loss.item()}): lower the learning rate")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        window.append(loss.item())
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            mean = sum(window) / len(window)
            curve.append({"step": step + 1, "loss": round(mean, 4), "lr": round(lr, 6)})
            bar.set_postfix(loss=f"{mean:.3f}")
            log.debug("step %d loss %.4f lr %.2e", step + 1, mean, lr)
            window = []
    model.eval()
    return curve


@torch.no_grad()
def generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[list[dict[str, str]]],
             max_new_tokens: int, batch_size: int = 10, progress: bool = False) -> list[list[int]]:
    """Greedy completions (new token ids, up to and including the stop token) of chat prompts."""
    model.eval()
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    out: list[list[int]] = []
    try:
        chunks = range(0, len(prompts), batch_size)
        for start in tqdm(chunks, desc="generate", unit="batch", disable=not progress):
            enc = tokenizer.apply_chat_template(
                list(prompts[start : start + batch_size]), add_generation_prompt=True, tokenize=True,
                return_dict=True, padding=True, return_tensors="pt",
            )
            ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            for row in ids[:, enc["input_ids"].shape[1] :].tolist():
                end = row.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in row else len(row)
                out.append(row[:end])
    finally:
        tokenizer.padding_side = side
    return out


def format_check(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, rows: Sequence[Mapping[str, Any]],
                 max_new_tokens: int, budgets: Sequence[int] = (), progress: bool = False) -> dict[str, Any]:
    """Generate greedily for held-out rows and score each with ``cortex.reward.score``.

    ``budgets`` adds the parse rate had generation stopped after that many new tokens (for a
    competition's ``max_new_tokens``), read from the same completions.
    """
    generated = generate(model, tokenizer, [row["prompt"] for row in rows], max_new_tokens, batch_size=32,
                         progress=progress)
    texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in generated]
    results = [score(text, row) for text, row in zip(texts, rows)]
    parsed = [r for r in results if r.parsed]
    errors = Counter(r.parse_error for r in results if not r.parsed)
    report: dict[str, Any] = {
        "prompts": len(rows),
        "max_new_tokens": max_new_tokens,
        "parse_rate": round(len(parsed) / len(rows), 4) if rows else None,
        "mean_reward": round(sum(r.total for r in results) / len(rows), 4) if rows else None,
        "mean_reward_parsed": round(sum(r.total for r in parsed) / len(parsed), 4) if parsed else None,
        "completion_tokens": {"mean": round(sum(map(len, generated)) / max(1, len(generated)), 1),
                              "max": max(map(len, generated), default=0)},
        "stopped": sum(1 for ids in generated if ids and ids[-1] == tokenizer.eos_token_id),
        "parse_errors": dict(errors.most_common(5)),
        "example": texts[0] if texts else None,
    }
    for budget in budgets:
        ok = sum(
            1 for ids, row in zip(generated, rows)
            if len(ids) <= budget and score(tokenizer.decode(ids, skip_special_tokens=True), row).parsed
        )
        report[f"parse_rate_within_{budget}_tokens"] = round(ok / len(rows), 4) if rows else None
    return report


def token_lengths(tokenizer: PreTrainedTokenizerBase, conversations: Sequence[list[dict[str, str]]]) -> dict:
    """Prompt (with the generation prompt) and assistant token counts: min, mean, p95, max."""
    prompts, answers = [], []
    for messages in conversations:
        _, labels = encode_chat(tokenizer, messages, max_length=1 << 30)
        prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True,
                                               return_dict=True)["input_ids"]
        prompts.append(len(prompt))
        answers.append(sum(1 for label in labels if label != IGNORE))

    def stats(values: list[int]) -> dict[str, float]:
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)] if ordered else 0
        mean = round(sum(ordered) / len(ordered), 1) if ordered else 0
        return {"min": ordered[0] if ordered else 0, "mean": mean, "p95": p95, "max": ordered[-1] if ordered else 0}

    return {"conversations": len(conversations), "prompt": stats(prompts), "completion": stats(answers),
            "total": stats([p + a for p, a in zip(prompts, answers)])}
