"""``score(completion, sample) → RewardBreakdown``: the reward of DESIGN.md §8.

total = floor                                        if the answer does not parse
      = accuracy + depth − min(penalty_cap, repetition + contradiction + unsupported_numbers)

clamped to [floor, 1 + depth_max]. ``score`` never raises for any ``completion``; it raises
``CortexError`` only for a sample that lacks the outcome columns (a data bug, not a model's).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from cortex.errors import CortexError
from cortex.reward import components as C
from cortex.reward.config import RewardConfig
from cortex.reward.parse import parse_completion
from cortex.reward.text import normalise, words

log = logging.getLogger(__name__)
DEFAULT_CONFIG = RewardConfig()


@dataclass(frozen=True)
class RewardBreakdown:
    """Every part of a reward, so that logs, filters and validators can say why."""

    total: float
    accuracy: float = 0.0
    direction_score: float = 0.0
    return_score: float = 0.0
    depth: float = 0.0
    penalties: float = 0.0  # after the cap
    repetition: float = 0.0
    contradiction: float = 0.0
    unsupported_numbers: float = 0.0
    reasoning_tokens: int = 0
    novel_tokens: int = 0
    answer: dict[str, Any] | None = None
    parse_error: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def parsed(self) -> bool:
        return self.parse_error is None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for logs, dataset cards and validator state)."""
        out = asdict(self)
        out["notes"] = list(self.notes)
        return out


@dataclass(frozen=True)
class Outcome:
    """The realised outcome of a sample, as the reward reads it."""

    asset: str
    horizon_days: int
    outcome_return: float
    went_up: bool
    realized_vol: float


def outcome_of(sample: Mapping[str, Any]) -> Outcome:
    """Read the outcome columns; a missing or non-finite one is a ``CortexError``."""
    def need(key: str) -> Any:
        if key not in sample or sample[key] is None:
            raise CortexError(
                f"sample lacks {key!r}: score against rows built by `cortex data build` "
                "(and keep the outcome columns in the GRPO dataset)")
        return sample[key]

    try:
        asset = str(need("asset"))
        horizon = int(need("horizon_days"))
        ret = float(need("outcome_return"))
        vol = float(need("realized_vol"))
    except (TypeError, ValueError) as exc:
        raise CortexError(f"sample has a malformed outcome column: {exc}") from None
    if not (math.isfinite(ret) and math.isfinite(vol)):
        raise CortexError("sample's outcome_return and realized_vol must be finite")
    direction = sample.get("outcome_direction")
    if direction not in (None, "up", "down"):
        raise CortexError(f"sample's outcome_direction must be 'up' or 'down', got {direction!r}")
    went_up = direction == "up" if direction is not None else ret > 0
    return Outcome(asset, horizon, ret, went_up, vol)


def prompt_text(sample: Mapping[str, Any]) -> str:
    """The prompt as plain text: ``prompt`` (string or chat) or the non-assistant ``messages``."""
    prompt = sample.get("prompt")
    if prompt is None:
        prompt = sample.get("messages")
    if isinstance(prompt, str):
        return prompt
    if not isinstance(prompt, (list, tuple)):
        return ""
    parts = []
    for message in prompt:
        if isinstance(message, Mapping) and message.get("role") != "assistant":
            parts.append(content_text(message.get("content")))
    return "\n".join(parts)


def content_text(content: Any) -> str:
    """A message's content as text: a string, or the text parts of a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, Mapping) and isinstance(p.get("text"), str))
    return ""


def score(completion: str, sample: Mapping[str, Any],
          config: RewardConfig = DEFAULT_CONFIG) -> RewardBreakdown:
    """Score one completion against one sample's realised outcome (see the module docstring)."""
    outcome = outcome_of(sample)
    parsed = parse_completion(completion, outcome.asset, outcome.horizon_days, config)
    if parsed.error is not None or parsed.answer is None:
        return RewardBreakdown(total=config.floor, parse_error=parsed.error or "no answer")
    try:
        return _score_parsed(parsed.reasoning, parsed.answer, outcome, sample, config)
    except Exception as exc:  # defensive: a validator must never crash on a miner's text
        log.exception("reward: internal error while scoring a parsed completion")
        return RewardBreakdown(total=config.floor, parse_error=f"internal error: {exc!r}"[:200])


def _score_parsed(reasoning: str, answer: dict[str, Any], outcome: Outcome,
                  sample: Mapping[str, Any], config: RewardConfig) -> RewardBreakdown:
    notes: list[str] = []
    d_score = C.direction_score(answer["p_up"], outcome.went_up)
    r_score = C.return_score(answer["return_pct"], outcome.outcome_return, outcome.realized_vol,
                             config)
    acc = C.accuracy(d_score, r_score, config)

    norm = normalise(reasoning)
    tokens = words(norm)
    prompt = prompt_text(sample)[: config.max_prompt_chars]
    facts = C.prompt_facts(prompt, config.prompt_copy_ngram) if prompt else None
    novel = C.novel_token_count(tokens, facts.grams if facts else frozenset(), config)
    dep = C.depth(len(tokens), novel, config)
    if len(tokens) > config.depth_max_tokens:
        notes.append(f"reasoning over {config.depth_max_tokens} tokens: no depth credit")

    rep = C.repetition_penalty(C.repetition_ratio(tokens, norm, config.repetition_ngram), config)
    contra, why = C.contradiction(norm, answer, config)
    if why:
        notes.append(why)
    if facts is not None:
        unsup, bad, checked = C.unsupported_numbers(norm, facts, answer, config)
        if bad:
            notes.append(f"{bad} of {checked} cited numbers not in the prompt")
    else:
        unsup = 0.0
        notes.append("no prompt in the sample: cited numbers not checked")
    penalties = min(config.penalty_cap, rep + contra + unsup)

    total = acc + dep - penalties
    total = C.clip(total if math.isfinite(total) else config.floor, config.floor, config.total_max)
    return RewardBreakdown(
        total=total, accuracy=acc, direction_score=d_score, return_score=r_score, depth=dep,
        penalties=penalties, repetition=rep, contradiction=contra, unsupported_numbers=unsup,
        reasoning_tokens=len(tokens), novel_tokens=novel, answer=answer, notes=tuple(notes))
