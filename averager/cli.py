"""Merge adapters into a base model by hand: an exact model, or a rank-r adapter.

``cortex merge --base DIR --adapter DIR --weight W [--adapter DIR --weight W …] --out DIR
[--method exact|rank-r --rank R] [--dtype float32|bfloat16|float16|same]`` writes a Hugging Face
model directory (``exact``) or a peft LoRA adapter directory (``rank-r``), and beside its files the
merge's report, ``merge.json`` (a :class:`cortex.protocol.rounds.MergeReport`; see docs/merging.md).
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from cortex.errors import CortexError
from cortex.protocol.rounds import MergeReport

log = logging.getLogger(__name__)
REPORT = "merge.json"  # a MergeReport; its content hash covers every other file of the folder


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", required=True, help="Hugging Face model directory (safetensors)")
    parser.add_argument("--adapter", action="append", required=True, metavar="DIR",
                        help="peft LoRA/DoRA adapter directory; repeat, each with its --weight")
    parser.add_argument("--weight", action="append", required=True, type=float, metavar="W",
                        help="merge weight of the --adapter in the same position (DoRA: they should sum to 1)")
    parser.add_argument("--out", required=True, help="new directory to write (must not exist)")
    parser.add_argument("--method", choices=("exact", "rank-r"), default="exact",
                        help="exact: a merged model; rank-r: a LoRA adapter of the merged delta")
    parser.add_argument("--rank", type=int, default=None, help="rank of the rank-r adapter")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16", "same"), default="float32",
                        help="dtype of the merged model's floating tensors (float32, the master)")
    parser.add_argument("--no-progress", "--plain", dest="progress", action="store_false", help="no progress bar")
    parser.set_defaults(func=run_merge)


def run_merge(args: argparse.Namespace) -> int:
    from averager.stream import merge_exact, merge_rank_r  # torch and peft load only when merging
    from cortex.adapter import NO_NORM_BOUNDS, BaseSpec, load_adapter, own_limits

    if len(args.adapter) != len(args.weight):
        raise CortexError(f"{len(args.adapter)} --adapter but {len(args.weight)} --weight; give one "
                          "--weight after each --adapter")
    if not all(math.isfinite(w) for w in args.weight):
        raise CortexError(f"--weight values must be finite numbers, got {args.weight}")
    if args.method == "rank-r" and (args.rank is None or args.rank < 1):
        raise CortexError("--method rank-r needs --rank R with R ≥ 1")
    if args.method == "exact" and args.rank is not None:
        raise CortexError("--rank applies only to --method rank-r")
    spec = BaseSpec.from_files(args.base, norms=False)  # each adapter passes the validators' checks against this base
    weighted = [(load_adapter(path, spec, own_limits(spec), bounds=NO_NORM_BOUNDS), weight)
                for path, weight in zip(args.adapter, args.weight, strict=True)]
    if args.method == "exact":
        report = merge_exact(args.base, weighted, args.out, dtype=args.dtype, progress=args.progress)
    else:
        report = merge_rank_r(args.base, weighted, args.out, args.rank, progress=args.progress)
    report.write(Path(args.out) / REPORT)
    print(summary(args.out, report))
    return 0


def summary(out: str, report: MergeReport) -> str:
    """One human line per fact: where, what, and the content hash."""
    lines = [f"wrote {out} ({report.method}, {report.modules_merged} modules, {len(report.inputs)} adapters)"]
    if report.energy:
        values = list(report.energy.values())
        lines.append(f"energy kept per module: min {min(values):.4f}, mean {sum(values) / len(values):.4f}")
    lines.append(f"content hash {report.content_hash} (every file but {REPORT})")
    return "\n".join(lines)
