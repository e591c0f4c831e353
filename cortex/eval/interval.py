"""The day-clustered interval of a mean paired difference: the one the validators score with, and the
one the leaderboard's live record reports (DESIGN.md §9, "days are the unit").

The differences of a day are averaged (one market moves all assets of a day together); the estimate is
the mean of the daily means; its standard error is the Newey-West (Bartlett) long-run variance of the
daily series, with lags up to the longest horizon − 1 day because questions of neighbouring days overlap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A day-clustered estimate of a mean paired difference."""

    mean: float
    low: float
    high: float
    days: int
    questions: int


def day_interval(diffs: Mapping[date, Sequence[float]], confidence: float, lags: int) -> Interval:
    """Mean of daily means of ``diffs`` (day → paired differences) and its one-sided bounds.

    The standard error is Newey-West's with Bartlett weights over calendar-day lags ``1..lags``
    (days missing from ``diffs`` simply contribute no pairs), scaled by n/(n−1).
    """
    days = sorted(d for d, v in diffs.items() if len(v))
    if not days:
        return Interval(0.0, 0.0, 0.0, 0, 0)
    means = np.array([float(np.mean(diffs[d])) for d in days])
    questions = sum(len(diffs[d]) for d in days)
    n, mean = len(days), float(means.mean())
    if n == 1:
        return Interval(mean, mean, mean, 1, questions)  # no spread is known: min_days guards this
    centred = means - mean
    ordinal = np.array([d.toordinal() for d in days])
    variance = float(centred @ centred) / n
    for lag in range(1, lags + 1):
        later = np.searchsorted(ordinal, ordinal + lag)
        found = (later < n) & (ordinal[np.minimum(later, n - 1)] == ordinal + lag)
        cov = float(centred[found] @ centred[later[found]]) / n
        variance += 2.0 * (1.0 - lag / (lags + 1)) * cov
    se = math.sqrt(max(variance, 0.0) / (n - 1))
    z = NormalDist().inv_cdf(confidence)
    return Interval(mean, mean - z * se, mean + z * se, n, questions)
