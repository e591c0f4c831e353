"""The reward as TRL sees it, and GRPO's group advantage.

TRL 1.16's ``GRPOTrainer._calculate_rewards`` calls every custom reward function as::

    func(prompts=prompts, completions=completions, completion_ids=completion_ids,
         trainer_state=..., log_extra=..., log_metric=..., **columns)

where ``columns`` holds every dataset column except ``prompt``/``completion``/``completion_ids``
as a list with one value per completion (a prompt's row repeated ``num_generations`` times).
Completions are strings for a plain-text dataset, and ``[{"role": "assistant", "content": …}]``
for a conversational one; when the tokenizer has a response schema/template, TRL's
``parse_response`` may move the thinking into ``reasoning_content`` (or ``thinking``) and leave
only the answer in ``content``: ``completion_text`` puts the two back together. The logged name
is the callable's ``__name__`` ("rewards/cortex_reward/mean").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from cortex.reward.config import RewardConfig
from cortex.reward.score import DEFAULT_CONFIG, content_text, score

# Keyword arguments TRL passes that are not dataset columns.
_NOT_COLUMNS = frozenset({"trainer_state", "log_extra", "log_metric", "completion_ids",
                          "environments", "prompts", "completions"})
_REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")


def completion_text(completion: Any) -> str:
    """A TRL completion (string, message, or list of messages) as the text the parser reads."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        messages: Sequence[Any] = [completion]
    elif isinstance(completion, (list, tuple)):
        messages = completion
    else:
        return ""
    parts = []
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role", "assistant") != "assistant":
            continue
        content = content_text(message.get("content"))
        thinking = next((message[k] for k in _REASONING_KEYS
                         if isinstance(message.get(k), str) and message[k]), None)
        if thinking is not None and "</think>" not in content:
            content = f"<think>{thinking}</think>{content}"
        parts.append(content)
    return "".join(parts)


class GRPOReward:
    """A TRL reward function bound to one competition's ``RewardConfig``.

    A class instance rather than a closure so that it pickles (TRL and accelerate may copy it)
    and carries its own ``__name__`` for the logs.
    """

    def __init__(self, config: RewardConfig = DEFAULT_CONFIG, name: str = "cortex_reward"):
        self.config = config
        self.__name__ = name

    def __call__(self, prompts: Sequence[Any] | None, completions: Sequence[Any],
                 **kwargs: Any) -> list[float]:
        n = len(completions)
        columns = {k: v for k, v in kwargs.items()
                   if k not in _NOT_COLUMNS and isinstance(v, (list, tuple)) and len(v) == n}
        breakdowns = []
        for i, completion in enumerate(completions):
            sample = {k: v[i] for k, v in columns.items()}
            if prompts is not None and i < len(prompts):
                sample["prompt"] = prompts[i]
            breakdowns.append(score(completion_text(completion), sample, self.config))
        _log(breakdowns, kwargs.get("log_metric"), kwargs.get("log_extra"), self.__name__)
        return [b.total for b in breakdowns]

    def __repr__(self) -> str:
        return f"GRPOReward(name={self.__name__!r}, config={self.config!r})"


def _log(breakdowns: list, log_metric: Any, log_extra: Any, name: str) -> None:
    """Per-batch means of the components through TRL's hooks, when it offers them."""
    if not breakdowns:
        return
    if callable(log_metric):
        parsed = [b for b in breakdowns if b.parsed]
        log_metric(f"{name}/parse_rate", len(parsed) / len(breakdowns))
        for part in ("accuracy", "depth", "penalties"):
            values = [getattr(b, part) for b in parsed]
            if values:
                log_metric(f"{name}/{part}", sum(values) / len(values))
    if callable(log_extra):
        log_extra(f"{name}_parse_error", [b.parse_error for b in breakdowns])


_DEFAULT_REWARD = GRPOReward()


def grpo_reward(prompts: Sequence[Any] | None, completions: Sequence[Any],
                **kwargs: Any) -> list[float]:
    """TRL ``reward_funcs`` entry with the default ``RewardConfig``; one float per completion.

    The outcome columns (asset, horizon_days, outcome_return, outcome_direction, realized_vol)
    must reach it as keyword arguments: keep them in the dataset (GRPOConfig keeps unused columns
    by default). Logged by TRL as ``rewards/cortex_reward/…``.
    """
    return _DEFAULT_REWARD(prompts, completions, **kwargs)


grpo_reward.__name__ = "cortex_reward"  # __qualname__ stays, so it still pickles by reference


def make_grpo_reward(config: RewardConfig, name: str = "cortex_reward") -> GRPOReward:
    """A TRL reward function with a competition's weights (logged under ``name``)."""
    return GRPOReward(config, name)


def group_advantages(rewards: Sequence[float], eps: float = 1e-4) -> list[float]:
    """GRPO's advantage within one group of answers to the same prompt: (r − mean) / (std + eps).

    ``std`` is the population standard deviation (divide by n). TRL divides by n − 1 (Bessel), so
    its advantages are smaller by sqrt((n − 1) / n); the ranking and signs are the same. A group
    whose rewards are all equal gets zero advantages: there is nothing to learn from it.
    """
    values = [float(r) for r in rewards]
    if not values:
        return []
    if not all(math.isfinite(v) for v in values):
        raise ValueError("group_advantages: rewards must be finite")
    if max(values) == min(values):
        return [0.0] * len(values)  # exactly, not a rounding residue of the mean
    mean = math.fsum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return [(v - mean) / (std + eps) for v in values]
