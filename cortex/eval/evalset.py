"""The market clock, the one question window and eligibility rule, and the averager's gate samples.

A **market clock** maps chain blocks to market days. On a live network it is the
calendar: a block's day is the UTC date of its timestamp, and the newest fully
resolved day is yesterday. Offline, a simulated clock replays the configured
source's history: the chain's genesis sits on ``start_day`` and every
``blocks_per_day`` blocks one more market day resolves, so a local subnet lives
through months of real (or synthetic) market history in minutes.

**The window** (``window``) is the one definition every role uses: the last ``days`` market days
that have closed at a block, oldest first. The validator asks the questions of its days
(``scoring.window_days``; ``validator.questions``) and scores them (``validator.scoring``); the
averager's gate draws its held-out samples from the days of ``eval.eval_window_days``; the localnet
waits for the first round whose window admits the miners' commitments. **Eligibility**
(``eligible_before``, ``may_answer``): a model answers a day's questions only if its commitment is
older than the first block at which that day closed, by at least the competition's
``eval.eligibility_delay_blocks``, so it cannot have seen the outcomes it is scored on; a window's
``eligible_before_block`` is that of its first day.

The round's **sync block** is its first block (``sync_block``). ``round_rows`` draws the averager's
gate samples: the window's resolved samples, drawn deterministically from the sync block's hash under
the competition's id and the gate's salt, so every averager that sees the same chain draws the same
set. (The validator does not draw: it asks every question of its window's days.)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping, Protocol

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
    start: date  # first market day (cutoff) in the window
    end: date  # the newest day that has closed (outcomes known up to here)
    eligible_before_block: int  # commitments at or after this block may not answer the first day

    @property
    def days(self) -> list[date]:
        """Every day of the window, oldest first."""
        return [self.start + timedelta(days=k) for k in range((self.end - self.start).days + 1)]


def window_start(end: date, days: int) -> date:
    """The first day of a window of ``days`` days that ends on ``end``."""
    return end - timedelta(days=days - 1)


def eligible_before(clock: MarketClock, day: date, delay_blocks: int) -> int:
    """A commitment at or after this block may not answer ``day``'s questions (committed before it closed)."""
    return clock.first_block_of(day) - delay_blocks


def may_answer(commit_block: int, day: date, clock: MarketClock, delay_blocks: int) -> bool:
    """Whether a model committed at ``commit_block`` answers the questions of ``day``."""
    return commit_block < eligible_before(clock, day, delay_blocks)


def window(clock: MarketClock, block: int, days: int, delay_blocks: int) -> EvalWindow:
    """The last ``days`` market days that have closed at ``block``, and who may answer the first of them."""
    end = clock.day(block)
    start = window_start(end, days)
    return EvalWindow(start, end, eligible_before(clock, start, delay_blocks))


def gate_window(clock: MarketClock, block: int, cfg: EvalConfig) -> EvalWindow:
    """The window the averager's gate draws from (``eval_window_days``)."""
    return window(clock, block, cfg.eval_window_days, cfg.eligibility_delay_blocks)


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
