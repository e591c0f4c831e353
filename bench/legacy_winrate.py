"""The scoring before issue 12, kept only as the benchmark's baseline (bench/skill_power.py).

Per round every model answered the same prompts; per prompt each pair of models was compared, the
earlier commitment getting an advantage epsilon (the competition's old ``EpsilonSchedule``: linear
decay with age); a model's win rate was its share of pairwise wins; weights were softmax(win rate /
temperature) over the miners (the base took part in the comparisons, never in weights); across
rounds the weights were smoothed per hotkey with ``alpha`` = the weight of the new round. The
validator no longer uses any of this (validator/scoring.py replaced it); nothing outside bench/
imports this module.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np

BASE = "base"


@dataclass(frozen=True)
class Epsilon:
    """The old ``EpsilonSchedule``: the earlier commitment's advantage, linear in age (blocks)."""

    start: float = 0.01
    end: float = 0.001
    decay_blocks: int = 50_400

    def epsilon(self, age_blocks: int) -> float:
        if age_blocks >= self.decay_blocks:
            return self.end
        fraction = max(age_blocks, 0) / self.decay_blocks
        return max(self.end, self.start - fraction * (self.start - self.end))


@dataclass(frozen=True)
class Entry:
    """One model's results in a round: per-prompt rewards, or None when it failed."""

    key: Hashable  # a hotkey, or BASE
    commit_block: int | None  # None for the base model
    rewards: np.ndarray | None


def win_rates(entries: list[Entry], epsilon: Epsilon, block: int) -> dict[Hashable, float]:
    """Each scored model's share of pairwise per-prompt wins against every other scored model."""
    scored = [e for e in entries if e.rewards is not None]
    out: dict[Hashable, float] = {e.key: 0.0 for e in entries}
    if len(scored) < 2:
        for e in scored:
            out[e.key] = 1.0
        return out
    rewards = np.stack([np.asarray(e.rewards, np.float64) for e in scored])  # (m, k)
    m = len(scored)
    committed = np.array([e.commit_block is not None for e in scored])
    blocks = np.array([e.commit_block if e.commit_block is not None else 0 for e in scored])
    eps = np.array([epsilon.epsilon(block - b) for b in blocks])
    earlier = (blocks[:, None] < blocks[None, :]) & committed[:, None] & committed[None, :]
    bonus = np.where(earlier, eps[:, None], 0.0)  # bonus[a, b]: a's advantage over b
    advantage = bonus - bonus.T
    margin = rewards[:, None, :] - rewards[None, :, :] + advantage[:, :, None]  # (m, m, k)
    wins = (margin > 0) + 0.5 * (margin == 0)
    wins[np.arange(m), np.arange(m), :] = 0.0
    rate = wins.sum(axis=(1, 2)) / ((m - 1) * rewards.shape[1])
    for e, r in zip(scored, rate):
        out[e.key] = float(r)
    return out


def softmax_weights(rates: Mapping[Hashable, float], temperature: float) -> dict[Hashable, float]:
    """softmax(win rate / temperature) over the miners with a positive win rate; the rest get 0."""
    keys = [k for k, r in rates.items() if k != BASE and r > 0]
    out = {k: 0.0 for k in rates if k != BASE}
    if not keys:
        return out
    logits = np.array([rates[k] for k in keys]) / temperature
    exp = np.exp(logits - logits.max())
    for k, v in zip(keys, exp / exp.sum()):
        out[k] = float(v)
    return out


def smooth(previous: Mapping[Hashable, float], current: Mapping[Hashable, float],
           alpha: float) -> dict[Hashable, float]:
    """Exponential moving average across rounds: ``alpha`` is the weight of the new round."""
    keys = set(previous) | set(current)
    return {k: alpha * current.get(k, 0.0) + (1 - alpha) * previous.get(k, 0.0) for k in keys}


def round_weights(entries: list[Entry], epsilon: Epsilon, block: int, temperature: float,
                  previous: Mapping[Hashable, float], alpha: float) -> dict[Hashable, float]:
    """One old-style round: win rates → softmax over the miners → smoothed with the previous round."""
    rates = win_rates(entries, epsilon, block)
    current = softmax_weights({k: v for k, v in rates.items() if k != BASE}, temperature)
    return smooth(previous, current, alpha)
