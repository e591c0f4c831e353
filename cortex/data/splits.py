"""Time-ordered train/validation/test splits with a gap of at least the longest horizon.

The cutoff days are cut into three consecutive date ranges. Between two ranges, ``gap`` days of
cutoffs are left out, with ``gap >= max horizon``: every outcome of a training sample
(day t + h <= train end + gap) falls strictly before the first validation cutoff, and likewise
for validation and test. So no label a model trained on is a price a later split's prompt can
contain, and no later split's outcome is ever known at training time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pandas as pd

from cortex.data.frame import DataError, iso, to_day
from cortex.data.samples import Sample

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitPlan:
    """Inclusive cutoff ranges per split, and the gap (days) left out between them."""

    ranges: dict[str, tuple[str, str]]
    gap_days: int

    def split_of(self, cutoff: str) -> str | None:
        for name, (first, last) in self.ranges.items():
            if first <= cutoff <= last:
                return name
        return None

    def as_dict(self) -> dict:
        return {"gap_days": self.gap_days, "ranges": {k: list(v) for k, v in self.ranges.items()}}


def plan_splits(first, last, gap_days: int, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> SplitPlan:
    """Cut [first, last] into train/validation/test date ranges by ``fractions`` of usable days."""
    first, last = to_day(first), to_day(last)
    if len(fractions) != 3 or min(fractions) <= 0:
        raise DataError("split fractions are three positive numbers (train, validation, test)")
    total = (last - first).days + 1
    usable = total - 2 * gap_days
    if usable < 3:
        raise DataError(f"{total} days of cutoffs are too few for three splits with {gap_days}-day gaps")
    scale = sum(fractions)
    n_train = max(1, round(usable * fractions[0] / scale))
    n_val = max(1, round(usable * fractions[1] / scale))
    if n_train + n_val >= usable:
        raise DataError(f"{usable} usable days leave no test split; widen --start/--end")
    day = pd.Timedelta(days=1)
    train_end = first + (n_train - 1) * day
    val_start = train_end + (gap_days + 1) * day
    val_end = val_start + (n_val - 1) * day
    test_start = val_end + (gap_days + 1) * day
    ranges = {"train": (iso(first), iso(train_end)), "validation": (iso(val_start), iso(val_end)),
              "test": (iso(test_start), iso(last))}
    return SplitPlan(ranges, gap_days)


def split_by_time(samples: Sequence[Sample], fractions: Sequence[float] = (0.8, 0.1, 0.1),
                  gap_days: int | None = None) -> tuple[dict[str, list[Sample]], SplitPlan]:
    """Samples per split (cutoffs in the gaps are dropped) and the plan that cut them.

    ``gap_days`` defaults to the longest horizon among the samples and may not be shorter.
    """
    if not samples:
        raise DataError("no samples to split: check the assets, horizons and date range")
    longest = max(s.horizon_days for s in samples)
    gap = longest if gap_days is None else int(gap_days)
    if gap < longest:
        raise DataError(f"a gap of {gap} days is shorter than the {longest}-day horizon")
    cutoffs = sorted({s.cutoff for s in samples})
    plan = plan_splits(cutoffs[0], cutoffs[-1], gap, fractions)
    out: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    for s in samples:
        name = plan.split_of(s.cutoff)
        if name is not None:
            out[name].append(s)
    return out, plan
