"""``cortex base bootstrap``: build the ``cortex-tiny`` base from nothing, offline, in minutes
(:mod:`cortex.model.bootstrap`); ``cortex base history`` and ``cortex base rollback --to REVISION``:
the base pointer's revisions.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cortex import workdir
from cortex.cliargs import share, whole_days
from cortex.errors import CortexError
from cortex.model.bootstrap import OWNER, BootstrapConfig, bootstrap, publish
from cortex.model.tiny import TINY_REPO


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="base_command", metavar="COMMAND")
    sub.required = True
    b = sub.add_parser("bootstrap", help="build and pre-train the tiny offline base (cortex-tiny)")
    b.add_argument("--out", required=True,
                   help="folder for the Hugging Face model (a new or empty one, or an earlier bootstrap's: replaced)")
    b.add_argument("--store", help="publish to this model store as cortex/tiny-llama: local:DIR or hf")
    b.add_argument("--source", default="synthetic", help="synthetic[:SEED] (default) | csv:DIR")
    b.add_argument("--seed", type=int, default=0, help="seed of the data, the initialisation and the order")
    b.add_argument("--steps", type=int, default=BootstrapConfig.steps, help="pre-training steps")
    b.add_argument("--eval-prompts", type=int, default=BootstrapConfig.eval_prompts,
                   help="held-out prompts for the format check")
    b.add_argument("--threads", type=int, default=BootstrapConfig.threads,
                   help="torch CPU threads (1 is faster on a CPU other jobs share)")
    b.add_argument("--informed-horizons", type=whole_days, default=",".join(map(str, BootstrapConfig.informed_horizons)),
                   metavar="DAYS", help="horizons whose pre-training forecasts are the analyst's, comma-separated "
                                        "('' for none); the others forecast the training base rate, so skill there "
                                        "is the miners' to bring")
    b.add_argument("--forecast-strength", type=share, default=BootstrapConfig.forecast_strength, metavar="SHARE",
                   help="at the informed horizons, the share of the analyst's move from the base rate each "
                        "pre-training forecast takes (1: the analyst's own; 0: the base rate)")
    b.add_argument("--no-progress", "--plain", dest="no_progress", action="store_true", help="no progress bars")
    b.add_argument("--force", action="store_true",
                   help="replace an --out folder that a bootstrap did not make (deletes what it holds)")
    b.set_defaults(func=_bootstrap)
    for name, text in (("history", "list the base repo's revisions, newest first, and the current pointer"),
                       ("rollback", "point the competition's base at a revision in the store, the newest by "
                                    "default (averager hotkey; the owner's first pointer reads better as `point`)")):
        p = sub.add_parser(name, help=text, aliases=["point"] if name == "rollback" else [])
        _pointer_args(p)
        if name == "rollback":
            p.add_argument("--to", default=None, metavar="REVISION",
                           help="the revision to point to (default: the newest in the store)")
        p.set_defaults(func=_history if name == "history" else _rollback)


def _pointer_args(p: argparse.ArgumentParser) -> None:
    from cortex import neuron

    neuron.add_args(p, source=False, clock=False, wandb=False)  # --netuid, --wallet.*, --subtensor.network, --store …
    p.add_argument("--competition", "--competitions", dest="competition", default="cortex-tiny", help="built-in id, or a competitions YAML/JSON file")
    p.add_argument("--competition.id", dest="competition_id", default=None, help="the id to pick from a file")
    p.add_argument("--repo", default=None, help="the base repo (default: the current pointer's)")


def _pointer_parts(args: argparse.Namespace):
    from cortex import neuron
    from cortex.protocol.competition import find_competition

    comp = find_competition(args.competition, args.competition_id)
    cfg = neuron.from_args(args)
    return cfg.open_chain(), cfg.open_store(), comp


def _history(args: argparse.Namespace) -> int:
    from cortex.model.pointer import current_base, history

    sub, store, comp = _pointer_parts(args)
    current = current_base(sub, args.netuid, comp, store)
    repo = args.repo or (current.repo if current else comp.base.repo)
    for revision in history(store, repo):
        mark = "  <- current base" if current and (current.repo, current.revision) == (repo, revision) else ""
        print(f"{repo}@{revision}{mark}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from cortex import neuron
    from cortex.model.pointer import current_base, history, rollback

    sub, store, comp = _pointer_parts(args)
    to = args.to
    if to is None:  # the newest revision in the store: the owner's first pointer after a bootstrap
        current = current_base(sub, args.netuid, comp, store)
        repo = args.repo or (current.repo if current else comp.base.repo)
        revisions = history(store, repo)
        if not revisions:
            raise CortexError(f"the store has no revision of {repo}: publish one first "
                              f"(`cortex base bootstrap --out DIR --store {args.store or 'local:DIR'}`)")
        to = revisions[0]
    commitment, block = rollback(sub, neuron.from_args(args).open_wallet(), args.netuid, comp, store, to,
                                 args.repo)
    print(f"{comp.id}: base pointer -> {commitment.repo_id}@{commitment.revision} at block {block}")
    return 0


def _bootstrap(args: argparse.Namespace) -> int:
    if args.steps < 1 or args.eval_prompts < 1 or args.threads < 1:
        raise CortexError("--steps, --eval-prompts and --threads must be at least 1")
    kind, _, store_dir = (args.store or "").partition(":")
    if kind == "local" and store_dir and workdir.nested(store_dir, args.out):
        raise CortexError(f"--store local:{store_dir} and --out {args.out} lie one inside the other, and each "
                          "bootstrap replaces --out whole: give the store a folder of its own (e.g. beside --out)")
    cfg = BootstrapConfig(out=Path(args.out), source=args.source, seed=args.seed, steps=args.steps,
                          informed_horizons=args.informed_horizons, forecast_strength=args.forecast_strength,
                          eval_prompts=args.eval_prompts, threads=args.threads,
                          progress=not args.no_progress, force=args.force)
    workdir.check(cfg.out, OWNER, force=cfg.force)  # before any work, not after it
    report = bootstrap(cfg)
    check = report["format_check"]
    print(f"wrote {cfg.out}: {report['parameters']:,} parameters, final loss {report['final_loss']}, "
          f"{report['seconds']['total']:.0f}s")
    print(f"held-out format check: parse rate {check['parse_rate']:.2f} on {check['prompts']} prompts within "
          f"{check['max_new_tokens']} new tokens, mean reward {check['mean_reward']:+.3f}"
          + (f"; errors: {check['parse_errors']}" if check["parse_errors"] else ""))
    print(f"content hash {report['revision']}")
    if args.store:
        revision = publish(cfg.out, args.store)
        print(f"published {TINY_REPO}@{revision} to {args.store}")
    return 0
