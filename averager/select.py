"""Choosing what to merge: winners from the chain, checked against the validators, made robust.

Pure functions over plain numbers (the low-rank geometry they need comes from
``averager.geometry``). A round's inputs go through these steps, and every input ends with one
:class:`Choice` that says what happened to it and why (``reason`` is a stable code):

1. ``from_chain``: every adapter commitment of the competition from a registered hotkey, with its
   uid's incentive from the metagraph. No incentive: ``no_incentive``.
2. ``cross_check``: against the validators' score tables (``<validator state>/scores/latest.json``).
   A model most tables refused or did not pay (it has not earned: too few days, no advantage over
   the base beyond the minimum, a copy) is ``rejected_by_validators``; one no table lists is
   ``unscored``. The input's ``score`` is the mean advantage over the base the tables report.
3. ``top``: the ``max_inputs`` with the most incentive (earliest commitment first on ties): ``not_top``.
4. ``plan``: near-identical updates (cosine ≥ ``duplicate_cosine``) keep only the earliest
   commitment (``duplicate``); updates whose norm is over ``outlier_factor`` × the median are
   ``outlier``; the rest share weights ∝ incentive, capped at ``max_weight`` per miner (a lone input
   takes weight 1: the cap bounds a share of a blend), and each
   weight is scaled by ``min(1, median norm / norm)``: clipping the update to the median norm
   (the weight left over stays on the unchanged base, see docs/merging.md).
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Sequence

from cortex.protocol.rounds import DROPPED, KEPT, RoundInput
from cortex.protocol.scores import ModelSkill, Refused, ScoreTable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SelectConfig:
    max_inputs: int = 8
    max_weight: float = 0.5  # per miner, after renormalising
    duplicate_cosine: float = 0.99
    outlier_factor: float = 4.0  # norm over this many times the median: dropped

    def __post_init__(self) -> None:
        if self.max_inputs < 1 or not 0 < self.max_weight <= 1:
            raise ValueError("max_inputs must be ≥ 1 and max_weight in (0, 1]")
        if not 0 < self.duplicate_cosine <= 1 or self.outlier_factor <= 1:
            raise ValueError("duplicate_cosine must be in (0, 1] and outlier_factor > 1")


@dataclass(frozen=True)
class Choice(RoundInput):
    """One input of a round and the averager's decision about it: the round record's input, as it is built."""

    def drop(self, reason: str, detail: str) -> Choice:
        log.info("uid %d %s: dropped (%s): %s", self.uid, self.model_key[:60], reason, detail)
        return replace(self, decision=DROPPED, reason=reason, detail=detail, weight=0.0)


def from_chain(commitments: Iterable[Any], uids: Mapping[str, int], incentives: Mapping[int, float],
               competition_id: str) -> list[Choice]:
    """The competition's adapter commitments from registered hotkeys (``OnChainCommitment`` records)."""
    out = []
    for record in commitments:
        c, uid = record.commitment, uids.get(record.hotkey)
        if c is None or uid is None or c.kind != "adapter" or c.competition_id != competition_id:
            continue
        choice = Choice(uid, record.hotkey, c.repo_id, c.revision, int(record.block), float(incentives.get(uid, 0.0)))
        out.append(choice if choice.incentive > 0 else choice.drop("no_incentive", "the metagraph gives this uid no "
                                                                    "incentive: no validator consensus on it"))
    return sorted(out, key=lambda c: (c.commit_block, c.hotkey))


def table_rows(tables: Sequence[ScoreTable], competition_id: str) -> list[ModelSkill | Refused]:
    """Every model's row of ``competition_id`` across score tables: its skill, or why it was refused."""
    rows: list[ModelSkill | Refused] = []
    for table in tables:
        comp = table.competitions.get(competition_id)
        if comp is not None:
            rows += comp.scores.models + comp.refused
    return rows


def cross_check(choices: Sequence[Choice], tables: Sequence[ScoreTable], competition_id: str) -> list[Choice]:
    """Drop what the validators refused or did not pay, or never scored; attach the mean advantage over the base."""
    if not tables:
        log.warning("no validator score tables given: choosing on the metagraph's incentive alone")
        return list(choices)
    rows = table_rows(tables, competition_id)
    out = []
    for c in choices:
        if c.decision != KEPT:
            out.append(c)
            continue
        mine = [r for r in rows if r.hotkey == c.hotkey and r.key == f"{c.repo}@{c.revision}"]
        if not mine:
            out.append(c.drop("unscored", f"none of the {len(tables)} score tables lists {c.model_key}"))
            continue
        bad = [r for r in mine if not isinstance(r, ModelSkill) or not r.earned]
        good = [r.advantage for r in mine if r not in bad]
        if 2 * len(bad) > len(mine):
            why = sorted({r.reason for r in bad})
            out.append(c.drop("rejected_by_validators", f"{len(bad)} of {len(mine)} tables: {', '.join(why)}"))
        else:
            out.append(replace(c, score=statistics.fmean(good) if good else None))
    return out


def top(choices: Sequence[Choice], max_inputs: int) -> list[Choice]:
    """Keep the ``max_inputs`` kept choices with the most incentive (earlier commitment first on ties)."""
    ranked = sorted((c for c in choices if c.decision == KEPT), key=lambda c: (-c.incentive, c.commit_block))
    cut = {c.hotkey for c in ranked[max_inputs:]}
    return [c.drop("not_top", f"only the {max_inputs} inputs with the most incentive are merged")
            if c.hotkey in cut and c.decision == KEPT else c for c in choices]


def cap_weights(raw: Mapping[Any, float], max_weight: float) -> dict[Any, float]:
    """Normalise ``raw`` (≥ 0) to sum 1 with no entry over ``max_weight`` (water-filling).

    When the cap cannot be met (fewer than 1 / max_weight entries), every entry gets the cap and
    the sum stays below 1: the rest stays on the unchanged base.
    """
    if any(v < 0 for v in raw.values()):
        raise ValueError("weights must be non-negative")
    weights, free = {}, {k: v for k, v in raw.items() if v > 0}
    budget = 1.0
    while free:
        total = sum(free.values())
        over = {k for k, v in free.items() if budget * v / total > max_weight}
        if not over:
            weights.update({k: budget * v / total for k, v in free.items()})
            break
        for k in over:
            weights[k] = max_weight
            del free[k]
        budget = 1.0 - sum(weights.values())
        if budget <= 1e-12:
            break
    return {k: weights.get(k, 0.0) for k in raw}


def plan(choices: Sequence[Choice], gram: Sequence[Sequence[float]], cfg: SelectConfig) -> list[Choice]:
    """Duplicates, outliers, capped weights and median-norm clipping over the kept ``choices``.

    ``gram[i][j]`` is ⟨ΔWᵢ, ΔWⱼ⟩ (Frobenius, summed over modules) for the i-th and j-th *kept* choice,
    in the order they appear in ``choices``.
    """
    kept = [i for i, c in enumerate(choices) if c.decision == KEPT]
    if len(gram) != len(kept):
        raise ValueError(f"gram is {len(gram)}×{len(gram)}, but {len(kept)} choices are kept")
    out = list(choices)
    norms = {i: max(float(gram[k][k]), 0.0) ** 0.5 for k, i in enumerate(kept)}
    for i in kept:
        out[i] = replace(out[i], norm=norms[i])
    alive = []
    for k, i in sorted(enumerate(kept), key=lambda ki: (choices[ki[1]].commit_block, choices[ki[1]].hotkey)):
        if norms[i] == 0:
            out[i] = out[i].drop("empty_update", "the adapter's update is zero")
            continue
        twin = next(((a, ka) for ka, a in alive if gram[k][ka] / (norms[i] * norms[a]) >= cfg.duplicate_cosine), None)
        if twin is not None:
            a, ka = twin
            cosine = gram[k][ka] / (norms[i] * norms[a])
            out[i] = out[i].drop("duplicate", f"cosine {cosine:.4f} with uid {choices[a].uid}'s update, committed "
                                              f"earlier (block {choices[a].commit_block})")
            continue
        alive.append((k, i))
    if not alive:
        return out
    median = statistics.median(norms[i] for _, i in alive)
    survivors = []
    for _, i in alive:
        if norms[i] > cfg.outlier_factor * median:
            out[i] = out[i].drop("outlier", f"update norm {norms[i]:.4g} is over {cfg.outlier_factor:g} × the "
                                            f"median {median:.4g}")
        else:
            survivors.append(i)
    median = statistics.median(norms[i] for i in survivors)
    # max_weight bounds one miner's share of a blend. A lone input is the whole update (weight 1): at any lower
    # weight its merge lands between the base and that adapter, short of what the miner trained and earned.
    capped = ({survivors[0]: 1.0} if len(survivors) == 1
              else cap_weights({i: choices[i].incentive for i in survivors}, cfg.max_weight))
    for i in survivors:
        clip = min(1.0, median / norms[i])
        weight = capped[i] * clip
        detail = (f"incentive {choices[i].incentive:.4f} → weight {capped[i]:.4f} (cap {cfg.max_weight:g})"
                  + (f", clipped ×{clip:.3f} to the median norm {median:.4g}" if clip < 1 else ""))
        out[i] = replace(out[i], weight=weight, clip=clip, reason="selected", detail=detail)
        log.info("uid %d %s: kept: %s", choices[i].uid, choices[i].model_key[:60], detail)
    return out


def kept(choices: Sequence[Choice]) -> list[Choice]:
    return [c for c in choices if c.decision == KEPT and c.weight > 0]
