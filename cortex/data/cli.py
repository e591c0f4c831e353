"""``cortex data``: build datasets, look at them, check sources, print a prompt."""

from __future__ import annotations

import argparse
import json

from cortex.cliargs import int_at_least, whole_days
from cortex.data.frame import DataError


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", default="synthetic",
                   help="synthetic[:SEED] (default, offline) | csv:DIR | binance | flipside | A+B")
    p.add_argument("--assets", default="BTC,ETH,SOL,NEAR", help="comma-separated, e.g. BTC,ETH")
    p.add_argument("--start", help="first cutoff day (YYYY-MM-DD)")
    p.add_argument("--end", help="last day of data used, outcomes included (YYYY-MM-DD)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic market")


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="COMMAND")
    sub.required = True

    b = sub.add_parser("build", help="build a train/validation/test reasoning dataset")
    _source_args(b)
    b.add_argument("--horizons", type=whole_days, default="1,7", help="forecast horizons in days, e.g. 1,7")
    b.add_argument("--teacher", default="analyst",
                   help="analyst (offline) | analyst-words (offline, directions instead of numbers) | "
                        "openrouter (DeepSeek R1)")
    b.add_argument("--out", required=True,
                   help="output folder (datasets.load_from_disk opens it): new, empty, or an earlier build's (replaced)")
    b.add_argument("--force", action="store_true",
                   help="replace an --out folder that `cortex data build` did not make (deletes what it holds)")
    b.add_argument("--stride", type=int_at_least(1), default=1, help="use every N-th day as a cutoff")
    b.add_argument("--min-reward", type=float, default=None,
                   help="drop training traces whose reward is below this (default 1.0)")
    b.add_argument("--fractions", default="0.8,0.1,0.1", help="train,validation,test shares of the days")
    b.add_argument("--no-progress", "--plain", dest="no_progress", action="store_true", help="no progress bars")
    b.set_defaults(func=_build)

    s = sub.add_parser("show", help="print a dataset's card and one example row")
    s.add_argument("path", help="a dataset folder from `cortex data build`")
    s.add_argument("--split", default="train", help="train, validation or test")
    s.add_argument("--row", type=int, default=0, help="which row of the split (from 0)")
    s.set_defaults(func=_show)

    c = sub.add_parser("check", help="load a source and report gaps, duplicates and bad prices")
    _source_args(c)
    c.set_defaults(func=_check)

    pr = sub.add_parser("prompt", help="print the prompt of one sample")
    _source_args(pr)
    pr.add_argument("--cutoff", required=True)
    pr.add_argument("--horizon", type=int, default=7)
    pr.set_defaults(func=_prompt)


def _build(args) -> int:
    from cortex import workdir
    from cortex.data.dataset import CARD, BuildConfig, build_dataset
    from cortex.data.filter import DEFAULT_MIN_REWARD

    # each build replaces --out whole: only a folder a build made (its marker, or a dataset card) is reused
    owner = workdir.Owner("cortex data build", "--out", legacy=(CARD,))
    workdir.check(args.out, owner, force=args.force)
    try:
        fractions = tuple(float(x) for x in args.fractions.split(","))
    except ValueError:
        raise DataError(f"--fractions takes three shares like 0.8,0.1,0.1 (got {args.fractions!r})") from None
    cfg = BuildConfig(source=args.source, assets=args.assets.split(","), horizons=args.horizons,
                      teacher=args.teacher, out=args.out, start=args.start, end=args.end, seed=args.seed,
                      stride=args.stride, fractions=fractions,
                      min_reward=DEFAULT_MIN_REWARD if args.min_reward is None else args.min_reward,
                      progress=not args.no_progress)
    card = build_dataset(cfg)
    workdir.mark(args.out, owner)
    label = "SYNTHETIC" if card["synthetic"] else "real"
    print(f"wrote {args.out} ({label} data from {card['source']}, teacher {card['teacher']['name']}, "
          f"pass rate {card['teacher_pass_rate']:.1%})")
    for name, split in card["splits"].items():
        bal = split["class_balance"]
        span = " .. ".join(split["cutoffs"]) if split["cutoffs"] else "-"
        print(f"  {name:<10} {split['rows']:>6} rows  cutoffs {span}  up {bal['up_fraction']}")
    return 0


def _show(args) -> int:
    from cortex.data.dataset import load_card, open_split

    card = load_card(args.path)
    split = open_split(args.path, args.split)
    if not 0 <= args.row < len(split):
        raise DataError(f"--row {args.row} is out of range: split {args.split!r} has rows 0 to {len(split) - 1}")
    print(json.dumps(card, indent=2))
    row = split[args.row]
    for m in row["messages"]:
        print(f"--- {m['role']}\n{m['content']}")
    print("--- outcome", {k: row.get(k) for k in ("asset", "cutoff", "horizon_days", "outcome_return",
                                                   "outcome_direction", "realized_vol", "synthetic")})
    return 0


def _check(args) -> int:
    from cortex.data.frame import check_frame, normalise_index
    from cortex.data.sources import get_source, parse_assets

    source = get_source(args.source, seed=args.seed)
    bad = 0
    for asset in parse_assets(args.assets):
        try:
            frame = source.load([asset], args.start, args.end)[asset]
            report = check_frame(normalise_index(frame), asset)
            print(f"{report.summary()}  ({report.rows} days {report.first} .. {report.last})")
        except DataError as exc:
            bad += 1
            print(f"{asset}: {exc}")
    print(f"source {source.name}{' (SYNTHETIC)' if source.is_synthetic else ''}: "
          f"{'all series clean' if not bad else f'{bad} broken'}")
    return 1 if bad else 0


def _prompt(args) -> int:
    from cortex.data.dataset import load_frames
    from cortex.data.samples import make_prompt
    from cortex.data.sources import get_source, parse_assets

    source = get_source(args.source, seed=args.seed)
    asset = parse_assets(args.assets)[0]
    frames = load_frames(source, [asset], None, args.end)
    for m in make_prompt(frames, asset, args.cutoff, args.horizon):
        print(f"--- {m['role']}\n{m['content']}")
    return 0
