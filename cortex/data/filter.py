"""The quality filter: score each teacher trace with the reward against its known outcome and
keep the good ones, saying how many passed and why the rest did not."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from cortex.data.samples import Sample

REASONS = ("teacher_error", "unparseable", "duplicate", "low_reward")
DEFAULT_MIN_REWARD = 1.0


def reward_fn() -> Callable[[str, Mapping], object]:
    """``cortex.reward.score`` (imported late: the reward is its own area)."""
    from cortex.reward import score

    return score


@dataclass
class FilterReport:
    total: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    mean_reward_kept: float | None = None
    examples: dict[str, str] = field(default_factory=dict)  # reason -> one example detail

    @property
    def pass_rate(self) -> float:
        return self.kept / self.total if self.total else 0.0

    def as_dict(self) -> dict:
        return {"total": self.total, "kept": self.kept, "pass_rate": round(self.pass_rate, 4),
                "dropped": {r: self.dropped.get(r, 0) for r in REASONS},
                "mean_reward_kept": None if self.mean_reward_kept is None else round(self.mean_reward_kept, 4),
                "examples": self.examples}

    def summary(self) -> str:
        why = ", ".join(f"{r} {n}" for r, n in self.dropped.most_common()) or "none dropped"
        return f"kept {self.kept}/{self.total} ({self.pass_rate:.1%}); {why}"


def _key(completion: str) -> str:
    return re.sub(r"\s+", " ", completion).strip().lower()


@dataclass
class Scored:
    sample: Sample
    completion: str
    reward: float


def filter_traces(samples: Sequence[Sample], completions: Sequence[str | None], *,
                  min_reward: float | None = DEFAULT_MIN_REWARD, drop_duplicates: bool = True,
                  score: Callable | None = None, progress: bool = False,
                  desc: str = "filter") -> tuple[list[Scored], FilterReport]:
    """Keep traces that parse, are not repeats of a kept trace, and score at least ``min_reward``.

    ``min_reward=None`` keeps every parseable trace (what the validation and test splits use, so
    that their outcomes are not selected by the teacher's luck).
    """
    if len(samples) != len(completions):
        raise ValueError("one completion per sample")
    score = score or reward_fn()
    report = FilterReport(total=len(samples))
    kept: list[Scored] = []
    seen: set[str] = set()

    def drop(reason: str, detail: str) -> None:
        report.dropped[reason] += 1
        report.examples.setdefault(reason, detail[:200])

    from tqdm.auto import tqdm

    pairs = tqdm(zip(samples, completions), total=len(samples), desc=desc, unit="trace", disable=not progress)
    for sample, text in pairs:
        where = f"{sample.asset} {sample.cutoff} h={sample.horizon_days}"
        if text is None:
            drop("teacher_error", where)
            continue
        result = score(text, sample.row())
        if result.parse_error is not None:
            drop("unparseable", f"{where}: {result.parse_error}")
            continue
        key = _key(text)
        if drop_duplicates and key in seen:
            drop("duplicate", where)
            continue
        if min_reward is not None and result.total < min_reward:
            drop("low_reward", f"{where}: {result.total:.3f} < {min_reward}")
            continue
        seen.add(key)
        kept.append(Scored(sample, text, float(result.total)))
    report.kept = len(kept)
    if kept:
        report.mean_reward_kept = sum(k.reward for k in kept) / len(kept)
    return kept, report
