"""The merge gate: the merged base must beat the current base and the best single adapter.

All three are scored with the validators' own code (``cortex.eval``: greedy decoding, the
competition's token budget and reward) on one held-out set: samples of the round's evaluation
window drawn with the sync block's hash under a salt of its own, so the set differs from the one
the validators ranked the adapters on, and every input was committed before its outcomes existed.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

from cortex.eval.evalset import EvalWindow, round_rows
from cortex.protocol.competition import Competition
from cortex.protocol.rounds import GateResult

log = logging.getLogger(__name__)
SALT = "averager-gate"


def decide(merged: float | None, base: float | None, singles: Mapping[str, float | None],
           margin: float) -> GateResult:
    """Pass only if ``merged`` beats ``base`` (strictly) and the best single adapter, each by ``margin``."""
    scored = {k: v for k, v in singles.items() if v is not None}
    best = max(scored, key=lambda k: scored[k]) if scored else None
    best_reward = scored[best] if best is not None else None

    def result(passed: bool, reason: str) -> GateResult:
        return GateResult(merged, base, best_reward, best, margin, passed, reason, singles=dict(singles))

    if merged is None:
        return result(False, "the merged base produced no score")
    if base is not None and not (merged > base and merged - base >= margin):
        return result(False, f"merged {merged:+.4f} does not beat the base {base:+.4f} by {margin:g}")
    if best_reward is not None and merged - best_reward < margin:
        return result(False, f"merged {merged:+.4f} does not match the best single adapter {best_reward:+.4f} "
                             f"plus {margin:g}")
    return result(True, f"merged {merged:+.4f} ≥ base {base if base is None else round(base, 4)} and best single "
                        f"{best_reward if best_reward is None else round(best_reward, 4)} (+{margin:g})")


def gate_rows(competition: Competition, source: Any, win: EvalWindow, block_hash: str) -> list[dict]:
    """The gate's held-out rows: the window's resolved samples, drawn under the gate's own salt."""
    return round_rows(competition, source, win, block_hash, salt=SALT)


def run_gate(base_dir: Path, merged_dir: Path, adapters: Mapping[str, Path], rows: Sequence[Mapping],
             competition: Competition, margin: float, device: str = "auto") -> GateResult:
    """Score the current base, every input adapter on it, and the merged base; then ``decide``."""
    from cortex.eval.generate import Generator, evaluate

    ev = competition.eval

    def score(generator: Generator, key: str, adapter: Path | None = None) -> float | None:
        result = evaluate(generator, rows, key=key, adapter=adapter, config=competition.reward,
                          time_budget=ev.time_budget_s)
        log.info("gate: %s: %s", key, result.reason or f"mean reward {result.mean_reward:+.4f}, parse rate "
                                                       f"{result.parse_rate:.0%}")
        return None if result.rewards is None else result.mean_reward

    current = Generator.load(base_dir, device=device, max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size)
    base = score(current, "base")
    singles = {key: score(current, key, path) for key, path in adapters.items()}
    del current  # one base in memory at a time
    merged_gen = Generator.load(merged_dir, device=device, max_new_tokens=ev.max_new_tokens,
                                batch_size=ev.batch_size)
    merged = score(merged_gen, "merged")
    verdict = decide(merged, base, singles, margin)
    log.info("gate %s: %s", "passed" if verdict.passed else "failed", verdict.reason)
    return GateResult(**{**asdict(verdict), "prompts": len(rows)})
