"""``cortex data build``: sources → samples → time splits → teacher traces → filter → datasets.

The result is a ``datasets.DatasetDict`` (train/validation/test) saved with ``save_to_disk``
plus ``card.json`` beside it. Rows carry ``messages`` ([system, user, assistant]), ``prompt``
([system, user]) and the outcome columns that ``cortex.reward`` reads.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from cortex.atomic import write_text
from cortex.data import features as F
from cortex.data import prompts as P
from cortex.data.filter import DEFAULT_MIN_REWARD, Scored, filter_traces
from cortex.data.frame import DataError, iso, to_day
from cortex.data.samples import build_samples
from cortex.data.sources import Source, get_source, parse_assets
from cortex.data.splits import SPLITS, split_by_time
from cortex.data.teachers import Teacher, get_teacher

log = logging.getLogger(__name__)
CARD = "card.json"
REALIZED_VOL = ("RMS of the 30 daily log returns up to and including the cutoff, times sqrt(horizon_days), "
                "as a fraction (known at the cutoff)")


def features():
    import datasets

    msg = datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})
    return datasets.Features({
        "messages": msg, "prompt": msg, "asset": datasets.Value("string"),
        "cutoff": datasets.Value("string"), "horizon_days": datasets.Value("int32"),
        "outcome_return": datasets.Value("float64"), "outcome_direction": datasets.Value("string"),
        "realized_vol": datasets.Value("float64"), "source": datasets.Value("string"),
        "synthetic": datasets.Value("bool"), "teacher": datasets.Value("string"),
        "teacher_reward": datasets.Value("float64"),
    })


def to_row(item: Scored, teacher: str) -> dict:
    row = item.sample.row()
    row["messages"] = row["prompt"] + [{"role": "assistant", "content": item.completion}]
    row["teacher"], row["teacher_reward"] = teacher, item.reward
    return row


@dataclass
class BuildConfig:
    source: str = "synthetic"
    assets: Sequence[str] = ("BTC", "ETH", "SOL", "NEAR")
    horizons: Sequence[int] = (1, 7)
    teacher: str = "analyst"
    out: str = "dataset"
    start: str | None = None  # first cutoff day (history before it is read as warm-up)
    end: str | None = None  # last day of data read: outcomes included
    seed: int = 0
    stride: int = 1
    fractions: Sequence[float] = (0.8, 0.1, 0.1)
    min_reward: float | None = DEFAULT_MIN_REWARD
    progress: bool = True


def load_frames(source: Source, assets: Sequence[str], start=None, end=None) -> dict[str, pd.DataFrame]:
    """The assets' frames (and BTC's, for relative strength, when the source has it)."""
    warm = to_day(start) - pd.Timedelta(days=F.LOOKBACK) if start else None
    frames = source.load(list(assets), warm, end)
    for asset, frame in frames.items():
        if "close" not in frame.columns:
            raise DataError(f"{source.name} gives no prices for {asset}: put a price source first, "
                            "e.g. binance+flipside or csv:DIR+flipside")
    if "BTC" not in frames:
        try:
            frames["BTC"] = source.load(["BTC"], warm, end)["BTC"]
        except DataError as exc:
            log.info("no BTC reference series (%s): prompts go without strength against BTC", exc)
    return frames


def build_dataset(cfg: BuildConfig, source: Source | None = None, teacher: Teacher | None = None) -> dict:
    """Build and save the dataset; returns the card. ``source``/``teacher`` override the names."""
    import datasets

    t0 = time.time()
    if not cfg.progress:
        datasets.disable_progress_bars()
    assets = parse_assets(cfg.assets)
    horizons = sorted({int(h) for h in cfg.horizons})
    source = source or get_source(cfg.source, seed=cfg.seed)
    teacher = teacher or get_teacher(cfg.teacher)
    log.info("loading %s from %s%s", ",".join(assets), source.name, " (SYNTHETIC)" if source.is_synthetic else "")
    frames = load_frames(source, assets, cfg.start, cfg.end)
    samples = build_samples(frames, assets, horizons, cfg.start, cfg.end, source=source.name,
                            synthetic=source.is_synthetic, stride=cfg.stride, progress=cfg.progress)
    splits, plan = split_by_time(samples, cfg.fractions)
    log.info("%d samples; splits %s", len(samples), {k: len(v) for k, v in splits.items()})
    teacher.fit(splits["train"])  # the training window only
    kept: dict[str, list[Scored]] = {}
    reports = {}
    for name in SPLITS:
        completions = teacher.complete(splits[name], progress=cfg.progress)
        min_reward = cfg.min_reward if name == "train" else None
        kept[name], reports[name] = filter_traces(splits[name], completions, min_reward=min_reward,
                                                  progress=cfg.progress, desc=f"filter {name}")
        log.info("%s: %s", name, reports[name].summary())
    dd = datasets.DatasetDict({
        name: datasets.Dataset.from_list([to_row(k, teacher.name) for k in kept[name]], features=features())
        for name in SPLITS
    })
    card = make_card(cfg, source, teacher, assets, horizons, plan, kept, reports, time.time() - t0)
    save(dd, card, Path(cfg.out))
    return card


def _split_card(items: list[Scored], report) -> dict:
    up = sum(1 for k in items if k.sample.outcome_direction == "up")
    cutoffs = [k.sample.cutoff for k in items]
    targets = [iso(k.sample.target_day) for k in items]
    return {
        "rows": len(items),
        "cutoffs": [min(cutoffs), max(cutoffs)] if items else None,
        "last_outcome_day": max(targets) if items else None,
        "class_balance": {"up": up, "down": len(items) - up,
                          "up_fraction": round(up / len(items), 4) if items else None},
        "assets": dict(sorted(Counter(k.sample.asset for k in items).items())),
        "horizons": {str(h): n for h, n in sorted(Counter(k.sample.horizon_days for k in items).items())},
        "filter": report.as_dict(),
    }


def make_card(cfg, source, teacher, assets, horizons, plan, kept, reports, seconds) -> dict:
    splits = {name: _split_card(kept[name], reports[name]) for name in SPLITS}
    order = [splits[n] for n in SPLITS if splits[n]["rows"]]
    ordered = all(a["last_outcome_day"] < b["cutoffs"][0] for a, b in zip(order, order[1:]))
    total = sum(r.total for r in reports.values())
    lengths = [P.approx_tokens("\n".join(m["content"] for m in k.sample.prompt)) for k in kept["train"][:500]]
    return {
        "source": source.name,
        "synthetic": bool(source.is_synthetic),
        "data": "SYNTHETIC market data (seeded simulation, not real prices)" if source.is_synthetic
        else "real market data",
        "assets": list(assets),
        "horizons": list(horizons),
        "seed": cfg.seed,
        "split_plan": plan.as_dict(),
        "time_ordered_no_overlap": ordered,
        "splits": splits,
        "teacher": teacher.describe(),
        "teacher_pass_rate": round(sum(r.kept for r in reports.values()) / total, 4) if total else None,
        "filter": {"min_reward": cfg.min_reward, "low_reward_applies_to": "train",
                   "note": "validation/test drop only teacher errors, unparseable and duplicate traces, "
                           "so their outcomes are not selected by the teacher's luck"},
        "columns": list(features().keys()),
        "realized_vol": REALIZED_VOL,
        "outcome_return": "close[cutoff + horizon_days] / close[cutoff] - 1 (fraction)",
        "prompt_tokens_approx": {"mean": round(sum(lengths) / len(lengths), 1) if lengths else None,
                                 "max": max(lengths, default=None),
                                 "method": "words + 3-digit groups + punctuation (tokenizer-free)"},
        "build_seconds": round(seconds, 1),
    }


def save(dd, card: dict, out: Path) -> None:
    """Write the DatasetDict and card into a temporary folder, then swap it into place."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        dd.save_to_disk(str(tmp))
        write_text(tmp / CARD, json.dumps(card, indent=2) + "\n")
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_card(path: str | Path) -> dict:
    card = Path(path) / CARD
    if not card.exists():
        raise DataError(f"{path} has no {CARD}: build it with `cortex data build --out {path}`")
    return json.loads(card.read_text())


def open_split(path: str | Path, split: str):
    """One split of a dataset folder that `cortex data build` wrote (a ``datasets.Dataset``); a folder
    that is not one, or a split it lacks, is a one-line :class:`DataError` naming what there is."""
    import datasets

    try:
        dd = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(f"cannot open dataset {path}: {exc}; build one with `cortex data build`") from None
    if not isinstance(dd, datasets.DatasetDict):
        return dd
    if split not in dd:
        raise DataError(f"dataset {path} has no split {split!r} (it has {', '.join(dd)})")
    return dd[split]
