"""From a round's per-prompt rewards to a score table and weights on chain (issue 5, steps 7-8).

Per competition: pairwise win rates with the earlier commitment's epsilon (``validator.scoring``),
the base's win rate reported beside them; mean reward and mean GRPO group advantage per model;
then softmax(win rate / temperature) over the miners. Across rounds the softmax weights are
smoothed per hotkey with ``alpha`` = the weight of the NEW round (alpha 1 forgets the past; a
small alpha moves slowly; a model that fails or disappears decays by the factor 1 - alpha per
round). Competitions are then combined by reward share, hotkeys mapped to their current uids, and
the weights set with ``bt.SetWeights`` and the project's version key, retrying after the blocks a
rate-limit error names.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import bittensor as bt
import numpy as np

from cortex.backtest import join, summarise
from cortex.protocol.competition import Competition, EpsilonSchedule
from cortex.reward import group_advantages
from validator.discovery import Candidate
from validator.scoring import BASE, Entry, smooth, softmax_weights, split_by_share, win_rates

if TYPE_CHECKING:
    from cortex.eval.generate import ModelScore

log = logging.getLogger(__name__)
_RETRY = re.compile(r"[Rr]etry in ~?(\d+) blocks")


def score_entries(entries: Sequence[Entry], epsilon: EpsilonSchedule, block: int
                  ) -> dict[Hashable, dict[str, float]]:
    """``{key: {win_rate, mean_reward, mean_advantage}}`` for every entry (failed ones score 0)."""
    rates = win_rates(list(entries), epsilon, block)
    scored = [e for e in entries if e.rewards is not None]
    advantages: dict[Hashable, float] = {e.key: 0.0 for e in entries}
    if scored:
        rewards = np.stack([np.asarray(e.rewards, np.float64) for e in scored])  # (models, prompts)
        per_prompt = np.array([group_advantages(rewards[:, k]) for k in range(rewards.shape[1])]).T
        for e, row in zip(scored, per_prompt):
            advantages[e.key] = float(row.mean()) if row.size else 0.0
    return {e.key: {"win_rate": rates[e.key],
                    "mean_reward": float(np.mean(e.rewards)) if e.rewards is not None and len(e.rewards) else 0.0,
                    "mean_advantage": advantages[e.key]} for e in entries}


def score_competition(comp: Competition, cands: Sequence[Candidate], refused: Mapping[str, tuple[str, str]],
                      results: Mapping[str, Mapping[str, Any]], rows: Sequence[Mapping], block: int) -> dict:
    """One competition's score table: the base and one row per candidate, with its softmax weight.

    ``results`` holds the round's evaluations by model key (``"base"``, ``repo@revision``): rewards
    and metrics, or a reason. ``refused`` holds per-hotkey refusals (a salted hash that does not verify).
    """
    def outcome(key: str) -> tuple[np.ndarray | None, str | None, str | None]:
        entry = results.get(key, {"reason": "not_evaluated", "detail": ""})
        values = entry.get("rewards")
        return (None if values is None else np.asarray(values)), entry.get("reason"), entry.get("detail")

    base_rewards, base_reason, _ = outcome("base")
    entries, models = [Entry(BASE, None, base_rewards, base_reason)], []
    for c in cands:
        values, reason, detail = outcome(c.model_key)
        if c.hotkey in refused:
            values, (reason, detail) = None, refused[c.hotkey]
        entries.append(Entry(c.hotkey, c.block, values, reason))
        models.append({"uid": c.uid, "hotkey": c.hotkey, "repo": c.commitment.repo_id,
                       "revision": c.commitment.revision, "commit_block": c.block, "reason": reason, "detail": detail,
                       "metrics": results.get(c.model_key, {}).get("metrics", {})})
    scores = score_entries(entries, comp.epsilon, block)
    softmax = competition_weights({k: v["win_rate"] for k, v in scores.items()}, comp.temperature)
    for m in models:
        m.update(scores[m["hotkey"]], softmax=softmax.get(m["hotkey"], 0.0))
    base = results.get("base", {})
    return {"competition": comp.id,
            "eval_set": [{k: r[k] for k in ("asset", "cutoff", "horizon_days")} for r in rows],
            "base_model": {**scores[BASE], "reason": base.get("reason"), "metrics": base.get("metrics", {})},
            "models": models, "softmax": softmax}


def competition_weights(rates: Mapping[Hashable, float], temperature: float) -> dict[Hashable, float]:
    """softmax over the miners' win rates (the base takes part in the comparisons, never in weights)."""
    return softmax_weights({k: v for k, v in rates.items() if k != BASE}, temperature)


def combine(current: Mapping[str, Mapping[str, float]], previous: Mapping[str, Mapping[str, float]],
            alpha: float, shares: Mapping[str, float], registered: set[str]
            ) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """(smoothed scores per competition, final weight per hotkey).

    ``current``: this round's softmax weights per competition and hotkey. Hotkeys that are no longer
    registered are dropped (uids are recycled; a new owner inherits nothing).
    """
    smoothed: dict[str, dict[str, float]] = {}
    for competition, weights in current.items():
        mixed = smooth(previous.get(competition, {}), weights, alpha)
        smoothed[competition] = {h: v for h, v in sorted(mixed.items()) if h in registered and v > 1e-12}
    return smoothed, split_by_share(smoothed, shares)  # type: ignore[return-value]


def to_uids(weights: Mapping[str, float], uids: Mapping[str, int]) -> dict[int, float]:
    return {uids[h]: w for h, w in sorted(weights.items(), key=lambda kv: uids.get(kv[0], -1))
            if h in uids and w > 0}


def _blocks_to_wait(sub: bt.Subtensor, netuid: int, message: str, own_uid: int | None) -> int:
    found = _RETRY.search(message)
    if found:
        return int(found.group(1))
    limit = int(sub.hyperparameters.weights_rate_limit(netuid) or 0)
    since = sub.epochs.blocks_since_last_update(netuid, own_uid) if own_uid is not None else None
    return max(1, limit - int(since or 0))


def set_weights(sub: bt.Subtensor, wallet: bt.Wallet, netuid: int, weights: Mapping[int, float], *,
                version_key: int, wait_blocks: Callable[[int], None], attempts: int = 4,
                own_uid: int | None = None) -> bool:
    """Set ``weights`` (uid → weight); on a rate limit wait the blocks the error names and retry."""
    uids = sorted(weights)
    values = [float(weights[u]) for u in uids]
    for attempt in range(1, attempts + 1):
        try:
            result = sub.execute(bt.SetWeights(netuid=netuid, uids=uids, weights=values, version_key=version_key),
                                 wallet)
        except bt.ChainError as exc:  # the SDK's preflight raises before submitting
            code, message = exc.code, str(exc)
        except bt.BittensorError as exc:  # weights the SDK refuses to send (all zero, bad uids)
            log.error("setting weights failed: %s", exc)
            return False
        else:
            if result.success:
                log.info("set weights on %d uids at block %s (version key %d)", len(uids), sub.block, version_key)
                return True
            code = result.error.code if result.error else None
            message = f"{result.error.name if result.error else ''}: {result.message}"
        if code != bt.ErrorCode.RATE_LIMITED or attempt == attempts:
            log.error("setting weights failed: %s", message)
            return False
        blocks = _blocks_to_wait(sub, netuid, message, own_uid)
        log.warning("weights rate-limited (%s); waiting %d blocks and retrying", message, blocks)
        wait_blocks(blocks)
    return False


def evaluation_summary(result: ModelScore, rows: Sequence[Mapping]) -> dict[str, Any]:
    """What the state keeps of one evaluation: rewards, reason, and metrics (never the completions)."""
    if result.rewards is None:
        return {"reason": result.reason.split(":")[0], "detail": result.reason, "seconds": result.seconds}
    answers = [{"asset": r["asset"], "cutoff": r["cutoff"], "horizon_days": r["horizon_days"],
                "p_up": p["answer"]["p_up"]} for p, r in zip(result.parts, rows) if p.get("answer")]
    joined, _ = join(rows, answers)
    back = summarise(joined, None) if joined else {}
    parsed = [p for p in result.parts if p["parse_error"] is None]

    def mean(key: str) -> float | None:
        return float(np.mean([p[key] for p in parsed])) if parsed else None

    metrics = {"parse_rate": result.parse_rate, "hit_rate": back.get("hit_rate"), "brier": back.get("brier"),
               "ece": back.get("ece"), "answered": len(joined), "accuracy": mean("accuracy"), "depth": mean("depth"),
               "penalties": mean("penalties"), "new_tokens": result.new_tokens}
    return {"reason": None, "rewards": [float(r) for r in result.rewards], "seconds": result.seconds,
            "metrics": metrics}
