"""The Cortex reward (DESIGN.md §8): one scorer for GRPO training, validators and the averager.

``score(completion, sample)`` parses ``<think>…</think><answer>{json}</answer>`` strictly and
returns a ``RewardBreakdown``; ``grpo_reward`` is the same reward as a TRL ``reward_funcs``
entry; ``group_advantages`` is GRPO's within-group normalisation. docs/reward.md has the formulas.
"""

from cortex.reward.config import RewardConfig
from cortex.reward.grpo import (
    GRPOReward,
    completion_text,
    group_advantages,
    grpo_reward,
    make_grpo_reward,
)
from cortex.reward.parse import KEYS, Parsed, parse_answer_json, parse_completion
from cortex.reward.score import RewardBreakdown, outcome_of, prompt_text, score

__all__ = [
    "KEYS",
    "GRPOReward",
    "Parsed",
    "RewardBreakdown",
    "RewardConfig",
    "completion_text",
    "group_advantages",
    "grpo_reward",
    "make_grpo_reward",
    "outcome_of",
    "parse_answer_json",
    "parse_completion",
    "prompt_text",
    "score",
]
