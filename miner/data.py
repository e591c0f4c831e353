"""The miner's data: which source, building (or loading) the dataset, and the rows each step uses.

The source comes from ``--source``, else the config's ``source``, else the CSV directory named by
``CORTEX_MARKET_DATA`` when it is set, else the seeded synthetic market (labelled synthetic in the
dataset's card and so in the adapter's model card). Splits are by time (``cortex.data``): SFT trains
on ``train``, early stopping watches ``eval_split``, the publish gate scores ``heldout_split``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from cortex.data.dataset import BuildConfig, build_dataset, load_card
from cortex.errors import CortexError
from miner.config import TrainConfig

log = logging.getLogger(__name__)
ENV = "CORTEX_MARKET_DATA"
BUILD_FILE = "miner_build.json"  # the build settings, to reuse a dataset only when they match


def resolve_source(cfg: TrainConfig, override: str | None = None) -> str:
    if override:
        return override
    if cfg.source:
        return cfg.source
    env = os.environ.get(ENV)
    return f"csv:{env}" if env else "synthetic"


def build_config(cfg: TrainConfig, source: str, out: Path, progress: bool = False) -> BuildConfig:
    # KTO learns from the low scorers too, and calibrate fits on every outcome (a set kept for the teacher's good
    # scores would hold mostly the days its reading was right): build unfiltered, and filter SFT's rows here instead.
    min_reward = None if "kto" in cfg.stage or "calibrate" in cfg.stage else cfg.min_teacher_reward
    return BuildConfig(source=source, assets=cfg.assets, horizons=cfg.horizons, teacher=cfg.teacher, out=str(out),
                       start=cfg.data_start, end=cfg.data_end, seed=cfg.seed, stride=cfg.stride,
                       min_reward=min_reward, progress=progress)


def prepare(cfg: TrainConfig, source: str, work: Path, *, refresh: bool = False) -> tuple[Any, dict]:
    """``(DatasetDict, card)``: the config's ``dataset``, or one built under ``work/data``.

    A dataset built earlier with the same settings is reused unless ``refresh`` (``--loop`` asks for
    one each round so new market days come in).
    """
    import datasets

    if cfg.dataset:
        path = Path(cfg.dataset)
        if not path.is_dir():
            raise CortexError(f"dataset {path} does not exist: build it with `cortex data build --out {path}`")
        return datasets.load_from_disk(str(path)), load_card(path)
    path = work / "data"
    build = build_config(cfg, source, path)
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(build).items() if k != "progress"}
    stamp = path / BUILD_FILE
    if refresh or not stamp.exists() or json.loads(stamp.read_text()) != json.loads(json.dumps(settings)):
        log.info("building the dataset from %s into %s", source, path)
        build_dataset(build)
        stamp.write_text(json.dumps(settings, indent=1) + "\n")
    else:
        log.info("reusing the dataset in %s (same build settings)", path)
    return datasets.load_from_disk(str(path)), load_card(path)


def spread(ds, n: int | None):
    """At most ``n`` rows evenly spaced through ``ds`` (time-ordered: the whole window, not its start)."""
    if n is None or n >= len(ds):
        return ds
    return ds.select([(i * len(ds)) // n for i in range(n)])


def _split(dd, name: str):
    if name not in dd:
        raise CortexError(f"the dataset has no split {name!r} (it has {list(dd)}): fix eval_split/heldout_split")
    return dd[name]


def sft_rows(dd, cfg: TrainConfig):
    """(train, validation) for SFT: traces that pass the quality bar, capped by max_samples / val_size."""
    train = _split(dd, "train").filter(lambda r: r["teacher_reward"] >= cfg.min_teacher_reward)
    val = _split(dd, cfg.eval_split)
    cap = None
    if cfg.val_size is not None:
        cap = int(cfg.val_size) if cfg.val_size >= 1 else max(1, int(cfg.val_size * len(val)))
    val = spread(val, cap)
    return spread(train, cfg.max_samples), (val if len(val) else None)


def preference_rows(dd, cfg: TrainConfig):
    """Training rows for GRPO and KTO (all traces, capped by max_samples)."""
    return spread(_split(dd, "train"), cfg.max_samples)


def calibration_questions(dd, cfg: TrainConfig) -> list[dict]:
    """The questions the calibrate stage answers and fits on: ``calibrate_samples`` of the training split with a
    known outcome, spread over its window (no quality filter: the fit needs the days the teacher got wrong as
    much as the others)."""
    rows = spread(_split(dd, "train"), cfg.calibrate_samples)
    return [dict(r) for r in rows if r.get("outcome_return") is not None]


def heldout_rows(dd, cfg: TrainConfig) -> list[dict]:
    return [dict(r) for r in spread(_split(dd, cfg.heldout_split), cfg.heldout_samples)]


def card_summary(card: dict) -> dict[str, Any]:
    """What the model card and metrics say about the training data."""
    return {"source": card.get("source"), "synthetic": card.get("synthetic"), "data": card.get("data"),
            "assets": card.get("assets"), "horizons": card.get("horizons"),
            "teacher": (card.get("teacher") or {}).get("name"),
            "rows": {k: v.get("rows") for k, v in (card.get("splits") or {}).items()},
            "cutoffs": {k: v.get("cutoffs") for k, v in (card.get("splits") or {}).items()}}
