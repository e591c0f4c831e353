"""``cortex export``: the current base to a Hugging Face folder with its lineage, GPTQ copies for vLLM and GGUF
copies for llama.cpp.

    cortex export --base work/base --out exported/                       # a model folder
    cortex export --chain.path work/chain/chain.db --state work --out exported/   # the chain's base pointer

Writes ``OUT/hf`` (model files, manifest, model card), ``OUT/gptq/w4a16``, ``OUT/gptq/w8a16``, ``OUT/gguf/*.gguf``
and ``OUT/export.json`` (sizes, and
held-out reward and parse rate of each copy against the unquantized model). See docs/serving.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    from cortex.serve.choose import add_base_args

    add_base_args(parser)
    a = parser.add_argument
    a("--out", required=True, help="a new (or empty) folder for the export")
    a("--gguf", default="f16,q8_0", help="GGUF types to write, comma-separated: f32, f16, q8_0 ('' for none)")
    a("--gptq", default="4,8", help="GPTQ bit widths to write (compressed-tensors W4A16/W8A16, the format vLLM "
      "loads), comma-separated: 4, 8 ('' for none)")
    a("--gptq-calibration", type=int, default=32,
      help="competition prompts (drawn from --source before the held-out days) the GPTQ copies are calibrated on")
    a("--questions", type=int, default=16,
      help="held-out questions drawn from --source to compare the copies on (0: write and size them, score nothing)")
    a("--questions-file", default=None, help="a benchmark file (JSON lines with prompt and outcome) instead")
    a("--source", default=None, help="market data: synthetic[:SEED] (offline default), csv:DIR, binance")
    a("--state", action="append", default=[], metavar="DIR",
      help="folders with averager round records and validator ledgers (benchmark figures, live record); repeatable")
    a("--device", default="cpu", help="for the unquantized model's answers: cpu, cuda …")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cortex.errors import CortexError
    from cortex.export.gguf import TYPES
    from cortex.export.gptq import parse_bits
    from cortex.export.run import ExportConfig, export
    from cortex.serve.choose import choose_base, competition_of

    kinds = tuple(k.strip() for k in args.gguf.split(",") if k.strip())
    bad = [k for k in kinds if k not in TYPES]
    if bad:
        raise CortexError(f"--gguf takes {', '.join(TYPES)}; got {', '.join(bad)}")
    gptq = parse_bits(args.gptq)
    if args.gptq_calibration < 1:
        raise CortexError(f"--gptq-calibration must be at least 1, got {args.gptq_calibration}")
    for folder in args.state:
        if not Path(folder).is_dir():
            raise CortexError(f"--state {folder} is not a folder")
    competition = competition_of(args)
    chosen = choose_base(args, competition)
    cfg = ExportConfig(Path(args.out), kinds, Path(args.questions_file) if args.questions_file else None,
                       args.questions, args.source, tuple(Path(p) for p in args.state), args.device, gptq=gptq,
                       gptq_calibration=args.gptq_calibration)
    report = export(chosen.ref.path, chosen.ref, chosen.store, competition, cfg)
    print(f"exported {report['repo']}@{report['revision'][:12]} to {args.out} "
          f"({len(report['lineage'])} lineage steps, {report['questions']} held-out questions)")
    for e in report["exports"]:
        score = (f"reward {e['mean_reward']:.3f} (change {e['reward_change']:+.3f}), parse rate "
                 f"{e['parse_rate']:.2f} (change {e['parse_rate_change']:+.2f})" if e.get("mean_reward") is not None
                 else f"not scored: {e.get('not_scored', 'no held-out questions')}")
        print(f"  {e['file']}: {e['bytes']:,} bytes, {score}")
    return 0
