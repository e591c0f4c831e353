"""From per-prompt rewards to weights: pairwise win rates, softmax, smoothing, competition split.

Pure functions (DESIGN.md §9). Every model of a competition answered the same
prompts; per prompt, each pair of models is compared. The earlier commitment
gets an advantage epsilon, in reward units, that decays linearly with its age
(the competition's ``EpsilonSchedule``): a later model must beat it by more than
epsilon, so a copy committed later (identical answers) always loses to the
original. The base model takes part as a reference without any advantage, and
never receives weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Mapping

import numpy as np

from cortex.protocol.competition import EpsilonSchedule

BASE = "base"


@dataclass(frozen=True)
class Entry:
    """One model's results in a round: per-prompt rewards, or why it has none."""

    key: Hashable  # a uid, or BASE
    commit_block: int | None  # None for the base model
    rewards: np.ndarray | None  # (prompts,), None when the model failed (zero score)
    reason: str | None = None


def win_rates(entries: list[Entry], epsilon: EpsilonSchedule, block: int) -> dict[Hashable, float]:
    """Each scored model's share of pairwise per-prompt wins against every other scored model.

    ``a`` beats ``b`` on a prompt when its reward, plus epsilon(age of a) if a committed
    strictly earlier, is higher; an exact tie between equals counts half. Failed models
    score 0 and are not opponents.
    """
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
    advantage = bonus - bonus.T  # what a gets over b, or owes b
    margin = rewards[:, None, :] - rewards[None, :, :] + advantage[:, :, None]  # (m, m, k)
    wins = (margin > 0) + 0.5 * (margin == 0)
    wins[np.arange(m), np.arange(m), :] = 0.0
    rate = wins.sum(axis=(1, 2)) / ((m - 1) * rewards.shape[1])
    for e, r in zip(scored, rate):
        out[e.key] = float(r)
    return out


def softmax_weights(rates: Mapping[Hashable, float], temperature: float) -> dict[Hashable, float]:
    """softmax(win rate / temperature) over the models with a positive win rate; the rest get 0."""
    if temperature <= 0:
        raise ValueError("temperature must be positive")
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
    """Exponential moving average across rounds: ``alpha`` is the weight of the NEW round.

    alpha = 1 keeps only this round; alpha → 0 barely moves. A model absent from this
    round (deregistered, or failed) decays toward 0 at the same rate.
    """
    if not 0 < alpha <= 1:
        raise ValueError("alpha must be in (0, 1]: the weight given to the new round")
    keys = set(previous) | set(current)
    return {k: alpha * current.get(k, 0.0) + (1 - alpha) * previous.get(k, 0.0) for k in keys}


def split_by_share(per_competition: Mapping[str, Mapping[Hashable, float]],
                   shares: Mapping[str, float]) -> dict[Hashable, float]:
    """Combine competitions: each one's (normalised) weights times its reward share; sums to 1."""
    total_share = sum(shares.get(c, 0.0) for c in per_competition)
    out: dict[Hashable, float] = {}
    for competition, weights in per_competition.items():
        mass = sum(weights.values())
        if mass <= 0 or total_share <= 0:
            continue
        for key, w in weights.items():
            out[key] = out.get(key, 0.0) + shares.get(competition, 0.0) / total_share * w / mass
    total = sum(out.values())
    return {k: v / total for k, v in out.items()} if total > 0 else out
