"""The merge gate: the merged base must beat the current base and the best single adapter.

A blend of several inputs that fails is not the end of the round: the **greedy soup**
(:func:`greedy_soup`, after Wortsman et al., "Model soups", 2022) starts from the best single adapter
and adds the next best only while the gate's score of the uniform merge improves; what it keeps is
gated again by the same rule. A merge of one input at full weight *is* that adapter folded into the
base, so it is held to beating the base only (``against_best=False``): there is nothing to blend it with.

All three are scored with the validators' own code (``cortex.eval``: greedy decoding, the
competition's token budget and reward) on one held-out set: samples of the round's evaluation
window drawn with the sync block's hash under a salt of its own, so the set differs from the one
the validators ranked the adapters on, and every input was committed before its outcomes existed.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from cortex.eval.evalset import EvalWindow, round_rows
from cortex.protocol.competition import Competition
from cortex.protocol.rounds import GateResult

log = logging.getLogger(__name__)
SALT = "averager-gate"


def decide(merged: float | None, base: float | None, singles: Mapping[str, float | None],
           margin: float, against_best: bool = True) -> GateResult:
    """Pass only if ``merged`` beats ``base`` (strictly) and, ``against_best``, the best single adapter, each
    by ``margin``."""
    scored = {k: v for k, v in singles.items() if v is not None}
    best = max(scored, key=lambda k: scored[k]) if scored else None
    best_reward = scored[best] if best is not None else None

    def result(passed: bool, reason: str) -> GateResult:
        return GateResult(merged, base, best_reward, best, margin, passed, reason, singles=dict(singles))

    if merged is None:
        return result(False, "the merged base produced no score")
    if base is not None and not (merged > base and merged - base >= margin):
        return result(False, f"merged {merged:+.4f} does not beat the base {base:+.4f} by {margin:g}")
    if against_best and best_reward is not None and merged - best_reward < margin:
        return result(False, f"merged {merged:+.4f} does not match the best single adapter {best_reward:+.4f} "
                             f"plus {margin:g}")
    if not against_best:
        return result(True, f"merged {merged:+.4f} (one input at full weight) ≥ base "
                            f"{base if base is None else round(base, 4)} (+{margin:g})")
    return result(True, f"merged {merged:+.4f} ≥ base {base if base is None else round(base, 4)} and best single "
                        f"{best_reward if best_reward is None else round(best_reward, 4)} (+{margin:g})")


def greedy_soup(order: Sequence[str], first: float, score: Callable[[list[str]], float | None]
                ) -> tuple[list[str], float, list[dict[str, Any]]]:
    """(members, their score, the steps): start from ``order[0]`` (the best single, scoring ``first``) and add
    each next input only if ``score`` of the uniform merge with it beats the soup so far (strictly)."""
    soup, best, steps = [order[0]], first, []
    for key in order[1:]:
        got = score([*soup, key])
        keep = got is not None and got > best
        steps.append({"added": key, "score": got, "kept": keep})
        log.info("greedy soup: + %s → %s (%s)", key[:60], "-" if got is None else f"{got:+.4f}",
                 "kept" if keep else f"not above {best:+.4f}")
        if keep:
            soup, best = [*soup, key], got
    return soup, best, steps


def score_model(model_dir: Path, rows: Sequence[Mapping], competition: Competition, key: str,
                device: str = "auto") -> float | None:
    """The mean reward of a (merged) base on the gate's rows; None when it produced no score."""
    from cortex.eval.generate import Generator

    ev = competition.eval
    generator = Generator.load(model_dir, device=device, max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size)
    return _score(generator, rows, competition, key)


def _score(generator: Any, rows: Sequence[Mapping], competition: Competition, key: str,
           adapter: Path | None = None) -> float | None:
    from cortex.eval.generate import evaluate

    result = evaluate(generator, rows, key=key, adapter=adapter, config=competition.reward,
                      time_budget=competition.eval.time_budget_s)
    log.info("gate: %s: %s", key, result.reason or f"mean reward {result.mean_reward:+.4f}, parse rate "
                                                   f"{result.parse_rate:.0%}")
    return None if result.rewards is None else result.mean_reward


def gate_rows(competition: Competition, source: Any, win: EvalWindow, block_hash: str) -> list[dict]:
    """The gate's held-out rows: the window's resolved samples, drawn under the gate's own salt."""
    return round_rows(competition, source, win, block_hash, salt=SALT)


def run_gate(base_dir: Path, merged_dir: Path, adapters: Mapping[str, Path], rows: Sequence[Mapping],
             competition: Competition, margin: float, device: str = "auto") -> GateResult:
    """Score the current base, every input adapter on it, and the merged base; then ``decide`` (one input:
    against the base only)."""
    from cortex.eval.generate import Generator

    ev = competition.eval
    current = Generator.load(base_dir, device=device, max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size)
    base = _score(current, rows, competition, "base")
    singles = {key: _score(current, rows, competition, key, path) for key, path in adapters.items()}
    del current  # one base in memory at a time
    merged = score_model(merged_dir, rows, competition, "merged", device)
    verdict = decide(merged, base, singles, margin, against_best=len(adapters) > 1)
    log.info("gate %s: %s", "passed" if verdict.passed else "failed", verdict.reason)
    return GateResult(**{**asdict(verdict), "prompts": len(rows)})
