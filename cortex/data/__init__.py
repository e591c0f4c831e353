"""Market data, prompts, outcomes, teachers and datasets (DESIGN.md §7; docs/data.md).

The API the rest of the project uses::

    from cortex.data import get_source, build_samples, make_prompt, outcome, realized_vol
    frames = get_source("csv:/path/to/market").load(["BTC", "ETH"], "2024-01-01", "2025-06-30")
    samples = build_samples(frames, ["BTC", "ETH"], [1, 7], start="2024-04-01")
    splits, plan = split_by_time(samples)
    window = eval_samples(frames, ["BTC"], [7], window_start="2025-05-01", as_of="2025-06-30")
    rows = [s.row() for s in window]  # what cortex.reward.score(completion, row) reads
"""

from cortex.data.frame import (
                               MARKET_COLUMNS,
                               ONCHAIN_COLUMNS,
                               DataError,
                               FrameReport,
                               check_frame,
                               validate_frame,
)
from cortex.data.prompts import ANSWER_FORMAT, SYSTEM_PROMPT
from cortex.data.samples import (
                               OUTCOME_COLUMNS,
                               Sample,
                               build_samples,
                               draw,
                               eval_samples,
                               make_prompt,
                               make_sample,
                               outcome,
                               realized_vol,
)
from cortex.data.sources import Source, get_source, parse_assets
from cortex.data.splits import SPLITS, SplitPlan, plan_splits, split_by_time

__all__ = [
    "ANSWER_FORMAT", "MARKET_COLUMNS", "ONCHAIN_COLUMNS", "OUTCOME_COLUMNS", "SPLITS", "SYSTEM_PROMPT",
    "DataError", "FrameReport", "Sample", "Source", "SplitPlan", "build_samples", "check_frame", "draw",
    "eval_samples", "get_source", "make_prompt", "make_sample", "outcome", "parse_assets", "plan_splits",
    "realized_vol", "split_by_time", "validate_frame",
]
