"""The publish gate: score the adapter, the base and the last published adapter on the held-out split.

Scoring goes through ``cortex.eval`` (greedy decoding with the base's chat template, the
competition's ``max_new_tokens``, ``cortex.reward`` with the competition's weights): the same code
validators run, so what the miner sees here is what a validator would see on the same prompts.
The adapter is published only if its mean reward beats the base's and the previous adapter's;
``--force`` publishes anyway (and says so).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cortex.eval.ceiling import brier_skill, forecasts
from cortex.eval.generate import Generator, ModelScore, evaluate
from cortex.protocol.competition import Competition

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    publish: bool
    reason: str


def _fields(prefix: str, s: ModelScore, rows: Sequence[Mapping]) -> dict[str, Any]:
    """Mean reward and parse rate, and beside them the Brier skill of the forecasts (1 − Brier / 0.25 over
    every prompt, an unparsed answer as 0.5: ``cortex.eval.ceiling``): what the adapter knows of the market."""
    skill = brier_skill(forecasts(s.parts), rows) if s.rewards is not None and s.parts else None
    return {f"heldout_reward_{prefix}": round(s.mean_reward, 6) if s.rewards is not None else None,
            f"heldout_parse_rate_{prefix}": round(s.parse_rate, 4) if s.rewards is not None else None,
            f"heldout_brier_skill_{prefix}": None if skill is None else round(skill, 4),
            f"heldout_failure_{prefix}": s.reason}


def score_heldout(base: Path, models: Mapping[str, Path | None], rows: Sequence[Mapping], competition: Competition,
                  *, max_new_tokens: int | None = None, device: str = "auto") -> dict[str, Any]:
    """Mean held-out rewards of each model (``None``: the bare base), as ``heldout_reward_KEY`` etc.;
    the base is placed by ``cortex.eval.base``'s policy (``device``: auto, cpu, cuda, cuda:N)."""
    if not rows:
        raise ValueError("no held-out rows to score")
    generator = Generator.load(base, device=device, max_new_tokens=max_new_tokens or competition.eval.max_new_tokens,
                               batch_size=competition.eval.batch_size)
    out: dict[str, Any] = {"heldout_prompts": len(rows), "heldout_max_new_tokens": generator.max_new_tokens}
    for key, path in models.items():
        result = evaluate(generator, rows, key=key, adapter=path, config=competition.reward)
        out.update(_fields(key, result, rows))
        out[f"heldout_seconds_{key}"] = round(result.seconds, 1)
        if result.completions:
            out[f"heldout_example_{key}"] = result.completions[0][:600]
        log.info("held-out %s: mean reward %s, parse rate %s, Brier skill %s%s", key, out[f"heldout_reward_{key}"],
                 out[f"heldout_parse_rate_{key}"], out[f"heldout_brier_skill_{key}"],
                 f" ({result.reason})" if result.reason else "")
    return out


def decide(metrics: Mapping[str, Any], force: bool = False) -> Decision:
    """Publish only an adapter that beats the base and the last published adapter (unless forced)."""
    mine, base, previous = (metrics.get(f"heldout_reward_{k}") for k in ("adapter", "base", "previous"))
    problems = []
    if mine is None:
        problems.append(f"the adapter could not be scored ({metrics.get('heldout_failure_adapter') or 'no held-out check'})")
    else:
        if base is not None and mine <= base:
            problems.append(f"held-out reward {mine:.4f} does not beat the base's {base:.4f}")
        if previous is not None and mine <= previous:
            problems.append(f"held-out reward {mine:.4f} does not beat the last published adapter's {previous:.4f}")
    if not problems:
        return Decision(True, f"held-out reward {mine:.4f} beats the base ({base})"
                              + (f" and the last published adapter ({previous})" if previous is not None else ""))
    if force:
        return Decision(True, "forced (--force): " + "; ".join(problems))
    return Decision(False, "; ".join(problems) + ": not publishing (train more, or --force)")
