"""The merge gate: the merged base must beat the current base and the best single adapter.

A blend of several inputs that fails is not the end of the round: the **greedy soup**
(:func:`greedy_soup`, after Wortsman et al., "Model soups", 2022) starts from the best single adapter
and adds the next best only while the gate's score of the uniform merge improves; what it keeps is
gated again by the same rule. A merge of one input at full weight *is* that adapter folded into the
base, so it is held to beating the base only (``against_best=False``): there is nothing to blend it with.

The merge must also forecast no worse than the base: its Brier skill on the same prompts (1 − Brier / 0.25,
an unparsed answer counting as 0.5) may not fall below the base's, when the base answers at least half of
them in format (``MIN_FORECAST_PARSE``; a base that cannot answer has no forecast to protect). The reward weighs format and depth as
much as the forecast, so a merge can raise it while its ``p_up`` gets worse (seeds 1 and 2 of
docs/localnet.md did, twice each); a subnet whose base is meant to forecast must not take such a merge.

The merge must not answer out of format more often than the base either (:func:`check_format`, run once the
rest has passed): the gate's 32 prompts miss a merge that loses its format on 6% of answers (0.94^32 = 14%
of the time it answers all 32; seed 2 of docs/localnet.md published one), so the count is taken on the
gate's prompts and ``format_prompts`` more, drawn from the last ``FORMAT_DAYS`` market days under a salt of
their own (the format needs no fresh outcomes; half a year of markets, because a merge can lose its format
in one kind of market only: seed 2's merge wrote ``"p_up": 0.0.0.0`` after "a clear edge", which the last 30
days rarely called for, and failed 2 of 96 prompts of them, 4 of 96 of the last 180 days, 12 of the
benchmark's 200), and the merge may exceed the base's count by at most ``max_format_loss`` of them: with
32 + 96 prompts and 2%, two more failures pass, three do not, so a loss of 6% spread over the prompts is
refused 97-98% of the time and a merge as good as a base that fails 1 answer in 200 is refused 1.6%.

All of it is scored with the validators' own code (``cortex.eval``: greedy decoding, the
competition's token budget and reward) on one held-out set: samples of the round's evaluation
window drawn with the sync block's hash under a salt of its own, so the set differs from the one
the validators ranked the adapters on, and every input was committed before its outcomes existed.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from cortex.eval.evalset import EvalWindow, round_rows
from cortex.protocol.competition import Competition
from cortex.protocol.rounds import GateResult

log = logging.getLogger(__name__)
SALT = "averager-gate"
FORMAT_SALT = "averager-format"
FORMAT_DAYS = 180  # the market days the format check's prompts come from (the last ones closed; at least the gate's)
# The forecast rule protects a forecast the base has: a base whose answers parse on fewer of the gate's prompts
# than this has none to lose (its Brier skill is mostly the 0.5 its unparsed answers count as), and any merge
# that answers is held to the reward alone.
MIN_FORECAST_PARSE = 0.5


@dataclass(frozen=True)
class Score:
    """A model on the gate's prompts: its mean reward and its Brier skill (None: it produced no score)."""

    reward: float | None
    brier_skill: float | None = None
    parse_rate: float | None = None
    failures: int | None = None  # answers out of format


def decide(merged: float | None, base: float | None, singles: Mapping[str, float | None],
           margin: float, against_best: bool = True, merged_skill: float | None = None,
           base_skill: float | None = None) -> GateResult:
    """Pass only if ``merged`` beats ``base`` (strictly) and, ``against_best``, the best single adapter, each
    by ``margin``, and the merge's Brier skill is not below the base's (when both are known)."""
    scored = {k: v for k, v in singles.items() if v is not None}
    best = max(scored, key=lambda k: scored[k]) if scored else None
    best_reward = scored[best] if best is not None else None

    def result(passed: bool, reason: str) -> GateResult:
        return GateResult(merged, base, best_reward, best, margin, passed, reason, singles=dict(singles),
                          merged_brier_skill=merged_skill, base_brier_skill=base_skill)

    if merged is None:
        return result(False, "the merged base produced no score")
    if base is not None and not (merged > base and merged - base >= margin):
        return result(False, f"merged {merged:+.4f} does not beat the base {base:+.4f} by {margin:g}")
    if against_best and best_reward is not None and merged - best_reward < margin:
        return result(False, f"merged {merged:+.4f} does not match the best single adapter {best_reward:+.4f} "
                             f"plus {margin:g}")
    if not forecasts_no_worse(merged_skill, base_skill):
        return result(False, f"merged reward {merged:+.4f} beats the base, but its Brier skill {merged_skill:+.4f} is "
                             f"below the base's {base_skill:+.4f}: the base would forecast worse")
    if not against_best:
        return result(True, f"merged {merged:+.4f} (one input at full weight) ≥ base "
                            f"{base if base is None else round(base, 4)} (+{margin:g})")
    return result(True, f"merged {merged:+.4f} ≥ base {base if base is None else round(base, 4)} and best single "
                        f"{best_reward if best_reward is None else round(best_reward, 4)} (+{margin:g})")


def greedy_soup(order: Sequence[str], first: float, score: Callable[[list[str]], float | None]
                ) -> tuple[list[str], float, list[dict[str, Any]]]:
    """(members, their score, the steps): start from ``order[0]`` (the best single, scoring ``first``) and add
    each next input only if ``score`` of the uniform merge with it beats the soup so far (strictly; ``score``
    returns None for a merge the gate would refuse whatever its reward, one that forecasts worse than the base)."""
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
                device: str = "auto") -> Score:
    """A (merged) base on the gate's rows: its mean reward and Brier skill."""
    from cortex.eval.generate import Generator

    ev = competition.eval
    generator = Generator.load(model_dir, device=device, max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size)
    return _score(generator, rows, competition, key)


def _score(generator: Any, rows: Sequence[Mapping], competition: Competition, key: str,
           adapter: Path | None = None) -> Score:
    from cortex.eval.ceiling import brier_skill, forecasts
    from cortex.eval.generate import evaluate

    result = evaluate(generator, rows, key=key, adapter=adapter, config=competition.reward,
                      time_budget=competition.eval.time_budget_s)
    if result.rewards is None:
        log.info("gate: %s: %s", key, result.reason)
        return Score(None)
    skill = brier_skill(forecasts(result.parts), rows)
    log.info("gate: %s: mean reward %+.4f, parse rate %.0f%%, Brier skill %s", key, result.mean_reward,
             100 * result.parse_rate, "-" if skill is None else f"{skill:+.4f}")
    return Score(result.mean_reward, skill, result.parse_rate, sum(p["parse_error"] is not None for p in result.parts))


def gate_rows(competition: Competition, source: Any, win: EvalWindow, block_hash: str) -> list[dict]:
    """The gate's held-out rows: the window's resolved samples, drawn under the gate's own salt."""
    return round_rows(competition, source, win, block_hash, salt=SALT)


def run_gate(base_dir: Path, merged_dir: Path, adapters: Mapping[str, Path], rows: Sequence[Mapping],
             competition: Competition, margin: float, device: str = "auto") -> GateResult:
    """Score the current base, every input adapter on it, and the merged base; then ``decide`` (one input:
    against the base only; the merge's Brier skill against the base's)."""
    from cortex.eval.generate import Generator

    ev = competition.eval
    current = Generator.load(base_dir, device=device, max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size)
    base = _score(current, rows, competition, "base")
    scores = {key: _score(current, rows, competition, key, path) for key, path in adapters.items()}
    del current  # one base in memory at a time
    merged = score_model(merged_dir, rows, competition, "merged", device)
    base_skill = base.brier_skill if (base.parse_rate or 0.0) >= MIN_FORECAST_PARSE else None
    verdict = decide(merged.reward, base.reward, {k: v.reward for k, v in scores.items()}, margin,
                     against_best=len(adapters) > 1, merged_skill=merged.brier_skill, base_skill=base_skill)
    log.info("gate %s: %s", "passed" if verdict.passed else "failed", verdict.reason)
    return GateResult(**{**asdict(verdict), "prompts": len(rows), "merged_failures": merged.failures,
                         "base_failures": base.failures,
                         "singles_brier_skill": {k: v.brier_skill for k, v in scores.items()}})


def format_rows(competition: Competition, source: Any, clock: Any, block: int, block_hash: str, n: int) -> list[dict]:
    """The format check's ``n`` prompts: resolved samples of the last ``FORMAT_DAYS`` market days at ``block`` (or
    the gate's window, if longer),
    drawn under the format check's salt (they may include some of the gate's own)."""
    import dataclasses

    from cortex.eval.evalset import window

    days = max(FORMAT_DAYS, competition.eval.eval_window_days)
    win = window(clock, block, days, competition.eval.eligibility_delay_blocks)
    wide = dataclasses.replace(competition, eval=dataclasses.replace(competition.eval, prompts_per_round=n))
    return round_rows(wide, source, win, block_hash, salt=FORMAT_SALT)


def format_no_worse(merged_failures: int, base_failures: int, prompts: int, max_loss: float) -> bool:
    """The format rule: the merge answers out of format on at most ``max_loss`` of ``prompts`` more than the base."""
    return merged_failures - base_failures <= max_loss * prompts


def check_format(gate: GateResult, base_dir: Path, merged_dir: Path, rows: Sequence[Mapping],
                 competition: Competition, max_loss: float, device: str = "auto") -> GateResult:
    """A passed ``gate`` with the format rule applied: the base and the merge answer ``rows`` too, and the
    failures are counted with the gate's own (``gate.merged_failures``, ``gate.base_failures``); with no ``rows``
    the gate's prompts are all that is counted."""
    m, b = gate.merged_failures or 0, gate.base_failures or 0
    if rows:
        base = score_model(base_dir, rows, competition, "base (format)", device)
        merged = score_model(merged_dir, rows, competition, "merged (format)", device)
        if base.failures is None or merged.failures is None:  # no answers at all (budget, crash): not a format count
            return gate
        m, b = m + merged.failures, b + base.failures
    n = gate.prompts + len(rows)
    counted = {"format_prompts": n, "merged_format_failures": m, "base_format_failures": b}
    if format_no_worse(m, b, n, max_loss):
        log.info("format check passed: the merge answers %d of %d prompts out of format, the base %d", m, n, b)
        return GateResult(**{**asdict(gate), **counted})
    reason = (f"the merge answers {m} of {n} prompts out of format against the base's {b}: more than "
              f"{max_loss:.0%} of them more ({gate.reason})")
    log.info("format check failed: %s", reason)
    return GateResult(**{**asdict(gate), **counted, "passed": False, "reason": reason})


def forecasts_no_worse(skill: float | None, base_skill: float | None) -> bool:
    """The gate's forecast rule: a Brier skill not below the base's (unknown on either side: no objection)."""
    return skill is None or base_skill is None or skill >= base_skill
