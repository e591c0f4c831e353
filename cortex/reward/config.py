"""Reward weights and thresholds: a competition setting (DESIGN.md §8).

Every field has a default so that ``RewardConfig()`` is the reference reward; a competition
overrides only what it changes. The class validates itself because a bad weight silently changes
what every miner is trained towards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from cortex.errors import CortexError


@dataclass(frozen=True)
class RewardConfig:
    """How a completion is scored. Every field is a competition setting (docs/reward.md)."""

    floor: float = -1.0  # total for an unparseable answer
    direction_weight: float = 0.6  # share of accuracy from 1 - Brier on p_up
    return_weight: float = 0.4  # share of accuracy from the volatility-scaled return error
    return_error_vols: float = 2.0  # an error of this many horizon volatilities earns nothing
    min_vol: float = 0.005  # floor on the volatility scale (a fraction)
    depth_max: float = 0.5  # credit for reasoning depth
    depth_min_tokens: int = 20  # below this, no depth credit
    depth_full_tokens: int = 120  # full credit from here ...
    depth_max_tokens: int = 1200  # ... up to here; longer reasoning gets none
    repetition_max: float = 0.5  # penalty for fully repeated reasoning
    repetition_ngram: int = 4  # word n-gram used to find repeats
    repetition_tolerance: float = 0.1  # repeat ratio natural prose may have without penalty
    contradiction_penalty: float = 0.5  # reasoning or answer that contradicts the answer
    unsupported_numbers_max: float = 0.3  # penalty when every cited number is absent from the prompt
    small_int_max: int = 10  # integers up to this (list numbering, horizons) are not checked
    prompt_copy_ngram: int = 8  # word n-gram shared with the prompt that counts as copied
    penalty_cap: float = 0.75  # penalties together never take more than this (< -floor)
    max_completion_chars: int = 65_536  # longer completions are unparseable (floor)
    max_answer_chars: int = 1_024  # longer <answer> bodies are unparseable
    max_abs_return_pct: float = 1_000.0  # |return_pct| above this is unparseable
    max_prompt_chars: int = 262_144  # the prompt is read up to here for number checks

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise CortexError(f"reward config: {f.name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise CortexError(f"reward config: {f.name} must be finite, got {value!r}")
        if self.floor >= 0:
            raise CortexError("reward config: floor must be negative (an unparseable answer loses)")
        nonneg = ("direction_weight", "return_weight", "depth_max", "repetition_max",
                  "contradiction_penalty", "unsupported_numbers_max", "penalty_cap")
        for name in nonneg:
            if getattr(self, name) < 0:
                raise CortexError(f"reward config: {name} must be >= 0")
        if self.direction_weight + self.return_weight <= 0:
            raise CortexError("reward config: direction_weight + return_weight must be > 0")
        if self.return_error_vols <= 0 or self.min_vol <= 0:
            raise CortexError("reward config: return_error_vols and min_vol must be > 0")
        if not 0 <= self.depth_min_tokens < self.depth_full_tokens <= self.depth_max_tokens:
            raise CortexError(
                "reward config: need 0 <= depth_min_tokens < depth_full_tokens <= depth_max_tokens"
            )
        if not 0 <= self.repetition_tolerance < 1:
            raise CortexError("reward config: repetition_tolerance must be in [0, 1)")
        if self.repetition_ngram < 1 or self.prompt_copy_ngram < 1:
            raise CortexError("reward config: n-gram sizes must be >= 1")
        if -self.penalty_cap <= self.floor:
            raise CortexError(
                "reward config: penalty_cap must be < -floor, so that any parseable answer "
                "beats an unparseable one"
            )
        for name in ("max_completion_chars", "max_answer_chars", "max_prompt_chars",
                     "max_abs_return_pct"):
            if getattr(self, name) <= 0:
                raise CortexError(f"reward config: {name} must be > 0")

    @property
    def total_max(self) -> float:
        """The highest total any completion can reach: perfect accuracy and full depth."""
        return 1.0 + self.depth_max
