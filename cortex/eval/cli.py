"""``cortex eval …``: offline evaluation of forecasts.

``cortex eval predict --base DIR [--adapter DIR] --dataset DIR --out FILE [--split test] [--limit N]`` runs a
model (a base folder, with an adapter folded in when given) greedily over a dataset split's prompts, with the
validators' own generator (``cortex.eval.generate.Generator``), and writes the JSONL that ``backtest`` reads:
one ``{asset, cutoff, horizon_days, completion}`` per row (``backtest`` parses each completion with the
reward's parser).

``cortex eval backtest --dataset DIR --predictions FILE [--split test] [--json OUT]`` joins a JSONL
of forecasts ({asset, cutoff, horizon_days, p_up[, return_pct]} or {asset, cutoff, horizon_days,
completion}) to a dataset split's outcomes and prints hit rate, Brier score, calibration and a
long/flat strategy against buy-and-hold (see ``cortex.backtest``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from cortex.atomic import write_text
from cortex.cliargs import int_at_least
from cortex.errors import CortexError

log = logging.getLogger(__name__)
OUTCOME_COLUMNS = ("asset", "cutoff", "horizon_days", "outcome_return", "outcome_direction")


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="eval_command", metavar="SUBCOMMAND")
    sub.required = True
    bt = sub.add_parser("backtest", help="hit rate, Brier, calibration and a long/flat strategy")
    bt.add_argument("--dataset", required=True, help="a dataset directory from `cortex data build`")
    bt.add_argument("--predictions", required=True, help="JSONL of forecasts or completions")
    bt.add_argument("--split", default="test", help="dataset split to score against (test)")
    bt.add_argument("--bins", type=int, default=10, help="calibration bins (10)")
    bt.add_argument("--json", dest="json_out", default=None, help="also write the report here")
    bt.set_defaults(func=run_backtest)

    pr = sub.add_parser("predict", help="run a model over a dataset split; write the predictions JSONL backtest reads")
    pr.add_argument("--base", required=True, metavar="DIR", help="a base model folder (e.g. `cortex base bootstrap --out`)")
    pr.add_argument("--adapter", default=None, metavar="DIR", help="a peft adapter folder to fold into the base")
    pr.add_argument("--dataset", required=True, help="a dataset directory from `cortex data build`")
    pr.add_argument("--split", default="test", help="dataset split to answer")
    pr.add_argument("--out", required=True, metavar="FILE", help="the predictions JSONL to write")
    pr.add_argument("--limit", type=int_at_least(1), default=None, help="answer only the first N rows")
    pr.add_argument("--max-new-tokens", type=int_at_least(1), default=384, help="tokens per answer at most")
    pr.add_argument("--batch-size", type=int_at_least(1), default=8, help="prompts per generation batch")
    pr.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    pr.set_defaults(func=run_predict)


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    """Every non-empty line of a JSONL file as a dict; a bad line names its number."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CortexError(f"cannot read predictions {path}: {exc}") from None
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise CortexError(f"{path}:{number}: not valid JSON; write one object per line") from None
        if not isinstance(item, dict):
            raise CortexError(f"{path}:{number}: expected a JSON object")
        out.append(item)
    return out


def read_samples(dataset: str | Path, split: str) -> tuple[list[dict[str, Any]], str | None]:
    """The outcome columns of one split, and the dataset's source label when its card has one."""
    from cortex.data.dataset import open_split

    path = Path(dataset)
    ds = open_split(path, split)
    missing = [c for c in OUTCOME_COLUMNS[:4] if c not in ds.column_names]
    if missing:
        raise CortexError(f"dataset {path} lacks outcome columns {', '.join(missing)}")
    keep = [c for c in OUTCOME_COLUMNS if c in ds.column_names]
    samples = ds.select_columns(keep).to_list()
    return samples, _source_label(path)


def _source_label(path: Path) -> str | None:
    """Where the data came from, from the JSON card beside the dataset (best effort), with the
    synthetic label spelled out so that no report of synthetic data passes for a real one."""
    cards = sorted(path.glob("*.json"), key=lambda p: (p.name != "card.json", p.name))
    for card in cards:
        try:
            data = json.loads(card.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and "source" in data:
            label = str(data["source"])[:200]
            if isinstance(data.get("data"), str):
                label += f" ({data['data'][:80]})"
            if data.get("synthetic") is True and "synthetic" not in label.lower():
                label += " [SYNTHETIC]"
            return label
    return None


def run_backtest(args: argparse.Namespace) -> int:
    from cortex.backtest import backtest, format_table, join

    if args.bins < 1:
        raise CortexError("--bins must be at least 1")
    samples, source = read_samples(args.dataset, args.split)
    predictions = read_predictions(args.predictions)
    rows, counts = join(samples, predictions)
    if not rows:
        raise CortexError(
            f"no prediction matched a sample of split {args.split!r} ({counts}); predictions are "
            "matched on asset, cutoff day and horizon_days")
    report = {"dataset": str(args.dataset), "split": args.split, "source": source,
              "counts": counts, **backtest(rows, bins=args.bins)}
    if source is not None:
        print(f"data source: {source}")
    print(f"split {args.split}: {counts['matched']} of {counts['samples']} samples forecast "
          f"({counts['invalid']} invalid, {counts['unmatched']} unmatched, "
          f"{counts['duplicates']} duplicate predictions)")
    print(format_table(report))
    if args.json_out:
        write_text(Path(args.json_out), json.dumps(report, indent=2) + "\n")
        log.info("wrote %s", args.json_out)
    return 0


PREDICTION_KEYS = ("asset", "cutoff", "horizon_days")


def run_predict(args: argparse.Namespace) -> int:
    from cortex.data.dataset import open_split

    base, adapter = Path(args.base), Path(args.adapter) if args.adapter else None
    if not (base / "config.json").is_file():
        raise CortexError(f"--base {base} is not a model folder (no config.json): build one with "
                          "`cortex base bootstrap --out DIR`")
    if adapter is not None and not (adapter / "adapter_config.json").is_file():
        raise CortexError(f"--adapter {adapter} is not a peft adapter folder (no adapter_config.json)")
    out = Path(args.out)
    if out.is_dir():
        raise CortexError(f"--out {out} is a folder: give the predictions file's path")
    split = open_split(args.dataset, args.split)
    missing = [c for c in ("prompt", *PREDICTION_KEYS) if c not in split.column_names]
    if missing:
        raise CortexError(f"dataset {args.dataset} lacks columns {', '.join(missing)}")
    rows = split.select_columns(["prompt", *PREDICTION_KEYS]).to_list()[:args.limit]
    if not rows:
        raise CortexError(f"split {args.split!r} of {args.dataset} has no rows")
    from cortex.eval.generate import Generator

    generator = Generator.load(base, device=args.device, max_new_tokens=args.max_new_tokens,
                               batch_size=args.batch_size)
    log.info("answering %d prompts of %s/%s with %s%s", len(rows), args.dataset, args.split, base,
             f" + {adapter}" if adapter else "")
    completions, tokens = generator.generate([r["prompt"] for r in rows], adapter)
    lines = [json.dumps({**{k: r[k] for k in PREDICTION_KEYS}, "completion": c}) for r, c in zip(rows, completions)]
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, "\n".join(lines) + "\n")
    print(f"wrote {len(lines)} predictions ({tokens} new tokens) to {out}; score them with "
          f"`cortex eval backtest --dataset {args.dataset} --split {args.split} --predictions {out}`")
    return 0
