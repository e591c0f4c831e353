"""The evaluation set of a round: which market days count, and which samples every model answers.

A **market clock** maps chain blocks to market days. On a live network it is the
calendar: a block's day is the UTC date of its timestamp, and the newest fully
resolved day is yesterday. Offline, a simulated clock replays the configured
source's history: the chain's genesis sits on ``start_day`` and every
``blocks_per_day`` blocks one more market day resolves, so a local subnet lives
through months of real (or synthetic) market history in minutes.

The round's evaluation set holds samples whose cutoff lies in the evaluation
window (the last ``eval_window_days`` resolved days) and whose outcome is known
at the sync block, drawn deterministically from the sync block's hash: every
validator that sees the same chain draws the same set. A model may be scored
only if its commitment is older than the window's first day (plus the
competition's delay), so it cannot have seen the outcomes it is scored on.

The round's **sync block** is its first block (``sync_block``), and ``round_rows`` turns a window
into the prompts every model answers: the validator draws them under the competition's id, the
averager's gate under a salt of its own, both from the same market history.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping, Protocol, Sequence

import pandas as pd

from cortex.data import Sample, draw, eval_samples
from cortex.errors import CortexError
from cortex.protocol.competition import Competition, EvalConfig


DEFAULT_START_DAY = date(2024, 1, 1)  # the simulated clock's defaults (cortex.neuron.add_args)
DEFAULT_BLOCKS_PER_DAY = 10
HISTORY_LOOKBACK_DAYS = 130  # market history loaded before the window (prompts need 100 days)


def sync_block(block: int, interval: int) -> int:
    """The round's first block: every validator (and the averager) in the same round agrees on it."""
    interval = max(int(interval), 1)
    return block - block % interval


class MarketClock(Protocol):
    def day(self, block: int) -> date:
        """The newest market day whose candle has closed at ``block``."""

    def first_block_of(self, day: date) -> int:
        """The first block at which ``day`` has closed."""


@dataclass(frozen=True)
class SimulatedClock:
    """Offline: genesis sees ``start_day`` closed; one more day closes every ``blocks_per_day``."""

    start_day: date
    blocks_per_day: int

    def day(self, block: int) -> date:
        return self.start_day + timedelta(days=max(block, 0) // self.blocks_per_day)

    def first_block_of(self, day: date) -> int:
        return max(0, (day - self.start_day).days * self.blocks_per_day)


@dataclass(frozen=True)
class CalendarClock:
    """Live: a block's time from a reference block and the chain's block time (UTC days)."""

    reference_block: int
    reference_time: float  # unix seconds of reference_block
    block_time: float

    def day(self, block: int) -> date:
        t = self.reference_time + (block - self.reference_block) * self.block_time
        return datetime.fromtimestamp(t, tz=timezone.utc).date() - timedelta(days=1)

    def first_block_of(self, day: date) -> int:
        closes = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc)
        return self.reference_block + math.ceil((closes.timestamp() - self.reference_time) / self.block_time)


def market_clock(kind: str, sub, block: int, start_day: date = DEFAULT_START_DAY,
                 blocks_per_day: int = DEFAULT_BLOCKS_PER_DAY) -> MarketClock:
    """``simulated`` (offline replay from genesis) or ``calendar`` (block times of ``sub``'s chain)."""
    if kind == "simulated":
        return SimulatedClock(start_day, blocks_per_day)
    if kind != "calendar":
        raise ValueError(f"unknown market clock {kind!r}: simulated or calendar")
    return CalendarClock(block, float(sub.chain.timestamp(block=block)["unix"]), float(sub.chain.block_time()))


@dataclass(frozen=True)
class EvalWindow:
    start: date  # first cutoff day in the window
    end: date  # last resolved day (outcomes known up to here)
    eligible_before_block: int  # commitments at or after this block are not scored this round


def window(clock: MarketClock, sync_block: int, cfg: EvalConfig) -> EvalWindow:
    end = clock.day(sync_block)
    start = end - timedelta(days=cfg.eval_window_days - 1)
    cutoff_block = clock.first_block_of(start - timedelta(days=1)) - cfg.eligibility_delay_blocks
    return EvalWindow(start, end, cutoff_block)


def seed_of(block_hash: str, competition_id: str) -> bytes:
    """The draw's seed: the sync block's hash, salted with the competition id."""
    return hashlib.sha256(f"{block_hash}:{competition_id}".encode()).digest()


def eval_set(frames: Mapping[str, pd.DataFrame], cfg: EvalConfig, win: EvalWindow, block_hash: str,
             competition_id: str, *, source: str = "", synthetic: bool = False) -> list[Sample]:
    """The round's samples: cutoff in the window, outcome known by its end, drawn by the block hash."""
    candidates = eval_samples(
        frames, list(cfg.assets), list(cfg.horizons_days), window_start=win.start.isoformat(),
        window_end=win.end.isoformat(), as_of=win.end.isoformat(), source=source, synthetic=synthetic,
    )
    return draw(candidates, cfg.prompts_per_round, seed_of(block_hash, competition_id))


def is_eligible(commit_block: int, win: EvalWindow) -> bool:
    return commit_block < win.eligible_before_block


def resolved_days(samples: Sequence[Sample]) -> tuple[str, str] | None:
    """The range of cutoffs in a set (for logs and reports)."""
    if not samples:
        return None
    cutoffs = sorted(s.cutoff for s in samples)
    return cutoffs[0], cutoffs[-1]


def round_rows(competition: Competition, source: Any, win: EvalWindow, block_hash: str, *,
               salt: str | None = None) -> list[dict]:
    """The rows every model answers this round: the window's resolved samples from ``source``,
    drawn by the sync block's hash under the competition's id (and ``salt``, for a draw of one's own)."""
    frames = source.load(list(competition.eval.assets), win.start - timedelta(days=HISTORY_LOOKBACK_DAYS), win.end)
    draw_id = competition.id if salt is None else f"{competition.id}/{salt}"
    samples = eval_set(frames, competition.eval, win, block_hash, draw_id, source=source.name,
                       synthetic=source.is_synthetic)
    if not samples:
        raise CortexError(f"no resolved samples in the window {win.start}..{win.end}"
                          f"{'' if salt is None else f' for {salt}'}: check --source and the clock")
    return [s.row() for s in samples]
