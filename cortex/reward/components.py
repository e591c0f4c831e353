"""The reward's components as pure functions (DESIGN.md §8; formulas in docs/reward.md).

Each returns a bounded float. Text arrives already normalised (``text.normalise``) and capped.
"""

from __future__ import annotations

import bisect
import functools
import re
from dataclasses import dataclass

from cortex.reward.config import RewardConfig
from cortex.reward.text import Number, ngrams, normalise, numbers, words


def clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else min(x, hi)


# ---------------------------------------------------------------- accuracy

def direction_score(p_up: float, went_up: bool) -> float:
    """1 − Brier: a proper scoring rule, so the best ``p_up`` to report is the true belief."""
    y = 1.0 if went_up else 0.0
    return clip(1.0 - (p_up - y) ** 2, 0.0, 1.0)


def return_score(return_pct: float, outcome_return: float, realized_vol: float,
                 config: RewardConfig) -> float:
    """1 − |error| / (k·σ), floored at 0; σ is the horizon's volatility (never below min_vol).

    Scaling by volatility, not by the true return, keeps the score meaningful near a zero return
    (a relative tolerance explodes there) and comparable between calm and wild assets.
    """
    scale_pct = config.return_error_vols * max(realized_vol, config.min_vol) * 100.0
    error_pct = abs(return_pct - 100.0 * outcome_return)
    return clip(1.0 - error_pct / scale_pct, 0.0, 1.0)


def accuracy(direction: float, ret: float, config: RewardConfig) -> float:
    """Weighted mean of the two scores; weights are normalised so accuracy stays in [0, 1]."""
    total_weight = config.direction_weight + config.return_weight
    return clip((config.direction_weight * direction + config.return_weight * ret) / total_weight,
                0.0, 1.0)


# ---------------------------------------------------------------- depth and repetition

def novel_token_count(tokens: list[str], prompt_grams: frozenset[tuple[str, ...]],
                      config: RewardConfig) -> int:
    """Tokens that start an n-gram not seen earlier in the reasoning nor copied from the prompt.

    This is what depth counts, so padding (repeating itself) and echoing the prompt add nothing.
    """
    seen: set[tuple[str, ...]] = set()
    novel = 0
    rep = ngrams(tokens, config.repetition_ngram)
    copy = ngrams(tokens, config.prompt_copy_ngram) if prompt_grams else None
    for i, gram in enumerate(rep):
        if gram in seen:
            continue
        seen.add(gram)
        if copy is not None and copy[i] in prompt_grams:
            continue
        novel += 1
    return novel


def depth(raw_tokens: int, novel_tokens: int, config: RewardConfig) -> float:
    """0 below depth_min_tokens novel tokens, linear to depth_max at depth_full_tokens, and 0 once
    the reasoning (raw tokens) exceeds depth_max_tokens. Saturating, so length alone cannot win."""
    if raw_tokens > config.depth_max_tokens:
        return 0.0
    span = config.depth_full_tokens - config.depth_min_tokens
    return config.depth_max * clip((novel_tokens - config.depth_min_tokens) / span, 0.0, 1.0)


def repetition_ratio(tokens: list[str], reasoning: str, n: int) -> float:
    """The larger of the repeated n-gram share and the repeated (non-empty) line share, in [0, 1]."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    gram_ratio = 1.0 - len(set(grams)) / len(grams) if grams else 0.0
    lines = [line.strip() for line in reasoning.splitlines()]
    lines = [line for line in lines if line]
    line_ratio = 1.0 - len(set(lines)) / len(lines) if len(lines) >= 2 else 0.0
    return clip(max(gram_ratio, line_ratio), 0.0, 1.0)


def repetition_penalty(ratio: float, config: RewardConfig) -> float:
    """Zero up to the tolerance natural prose has, then linear to repetition_max at ratio 1."""
    excess = (ratio - config.repetition_tolerance) / (1.0 - config.repetition_tolerance)
    return config.repetition_max * clip(excess, 0.0, 1.0)


# ---------------------------------------------------------------- contradiction

_SENTENCE_END = re.compile(r"[.!?](?:\s|$)|[\n;]")
_UP = frozenset({"bullish", "up", "upward", "upwards"})
_DOWN = frozenset({"bearish", "down", "downward", "downwards"})
_CUES = frozenset({
    "overall", "conclude", "conclusion", "expect", "expects", "expected", "expectation", "lean",
    "leaning", "leans", "predict", "prediction", "forecast", "therefore", "thus", "hence",
    "final", "finally", "verdict", "bias", "outlook", "view", "call", "direction", "answer",
})
_NEGATIONS = frozenset({"not", "no", "never", "nor", "neither", "without", "t", "unlikely"})


def reasoning_conclusion(reasoning: str) -> str | None:
    """The direction of the reasoning's last concluding sentence: "up", "down" or None.

    A concluding sentence holds a cue word (overall, expect, lean, therefore, …). Walking back
    from the end, the first one that names a direction decides; if it names both, or negates
    ("not bullish"), the conclusion is ambiguous and nothing is penalised: a false accusation
    of contradiction would punish honest hedged reasoning.
    """
    for sentence in reversed(_SENTENCE_END.split(reasoning)):
        tokens = set(words(sentence, limit=200))
        if not tokens & _CUES:
            continue
        up, down = bool(tokens & _UP), bool(tokens & _DOWN)
        if not (up or down):
            continue
        if (up and down) or tokens & _NEGATIONS:
            return None
        return "up" if up else "down"
    return None


def contradiction(reasoning: str, answer: dict, config: RewardConfig) -> tuple[float, str | None]:
    """contradiction_penalty (once) if the answer contradicts itself or the reasoning.

    The answer contradicts itself when ``direction`` disagrees with the side of 0.5 that ``p_up``
    is on (0.5 exactly agrees with both) or with the sign of ``return_pct`` (0 agrees with both).
    """
    direction, p_up, ret = answer["direction"], answer["p_up"], answer["return_pct"]
    if (direction == "up" and p_up < 0.5) or (direction == "down" and p_up > 0.5):
        return config.contradiction_penalty, f"direction {direction} but p_up {p_up:g}"
    if (direction == "up" and ret < 0) or (direction == "down" and ret > 0):
        return config.contradiction_penalty, f"direction {direction} but return_pct {ret:g}"
    concluded = reasoning_conclusion(reasoning)
    if concluded is not None and concluded != direction:
        return config.contradiction_penalty, f"reasoning concludes {concluded}, answer {direction}"
    return 0.0, None


# ---------------------------------------------------------------- unsupported numbers

@dataclass(frozen=True)
class PromptFacts:
    """What the reward needs from a prompt, computed once per prompt (GRPO repeats each prompt)."""

    values: tuple[float, ...]  # every number in the prompt, sorted
    grams: frozenset[tuple[str, ...]]  # its word n-grams, to spot copying


@functools.lru_cache(maxsize=256)
def prompt_facts(prompt: str, copy_ngram: int) -> PromptFacts:
    norm = normalise(prompt)
    values = tuple(sorted(n.value for n in numbers(norm, limit=100_000)))
    tokens = words(norm)
    grams = frozenset(tuple(tokens[i : i + copy_ngram])
                      for i in range(max(0, len(tokens) - copy_ngram + 1)))
    return PromptFacts(values=values, grams=grams)


_CONVENTIONAL = (0.5, 50.0, 100.0)  # the probability midpoint and percent bases


def _supported(number: Number, values: tuple[float, ...], extra: tuple[float, ...]) -> bool:
    """Whether the number, read as itself, as a percent of a fraction or as a fraction of a
    percent, lies within its rounding tolerance of a prompt number or an exempt value."""
    for scale in (1.0, 0.01, 100.0):
        v, tol = number.value * scale, number.tolerance * scale + 1e-12
        if any(abs(v - e) <= tol for e in extra):
            return True
        i = bisect.bisect_left(values, v - tol)
        if i < len(values) and values[i] <= v + tol:
            return True
    return False


def unsupported_numbers(reasoning: str, facts: PromptFacts, answer: dict,
                        config: RewardConfig) -> tuple[float, int, int]:
    """(penalty, unsupported, checked): penalty = max · unsupported / checked.

    Integers up to small_int_max (list numbering, horizons) are not checked; neither are the
    answer's own p_up / return_pct (a model may state its estimate while reasoning) nor 0.5,
    50 and 100.
    """
    exempt = (answer["p_up"], answer["return_pct"], abs(answer["return_pct"]),
              float(answer["horizon_days"])) + _CONVENTIONAL
    checked = unsupported = 0
    for number in numbers(reasoning):
        if number.integer and number.value <= config.small_int_max:
            continue
        checked += 1
        if not _supported(number, facts.values, exempt):
            unsupported += 1
    if checked == 0:
        return 0.0, 0, 0
    return config.unsupported_numbers_max * unsupported / checked, unsupported, checked
