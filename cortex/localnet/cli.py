"""`cortex localnet`: a whole subnet on this machine, offline, with no keys (docs/localnet.md).

    cortex localnet [--miners 4] [--validators 2] [--rounds 2] [--source synthetic|csv:DIR|binance]
                    [--seed N] [--workdir DIR] [--base-steps N] [--train-steps N] [--eval-prompts N] [--no-averager]
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from datetime import date
from pathlib import Path

from cortex.errors import CortexError
from cortex.localnet.config import RETRAIN, Settings

D = Settings()


def register(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--miners", type=int, default=D.miners, help="miners, each with its own seed, hyperparameters and data")
    a("--validators", type=int, default=D.validators, help="validators, with unequal stakes")
    a("--rounds", type=int, default=D.rounds, help="rounds of mining, scoring, consensus and merging")
    a("--source", default=D.source, help="market data: synthetic[:SEED] (default), csv:DIR, binance (online)")
    a("--seed", type=int, default=D.seed,
      help="the run's seed: the synthetic market (for plain --source synthetic), the base and every miner")
    a("--workdir", default=str(D.workdir),
      help="emptied on every run (a base bootstrapped there is reused); a folder localnet did not make is refused")
    a("--force", action="store_true", help="empty a --workdir that localnet did not make (deletes what it holds)")
    a("--netuid", type=int, default=D.netuid)
    a("--block-time", type=float, default=D.block_time, help="seconds per block while the subnet runs")
    a("--tempo", type=int, default=D.tempo, help="blocks per epoch and per validator round")
    a("--clock.start-day", dest="start_day", default=D.start_day.isoformat(),
      help="the simulated market day that has closed at genesis (YYYY-MM-DD)")
    a("--clock.blocks-per-day", dest="blocks_per_day", type=int, default=D.blocks_per_day,
      help="simulated market clock: one market day closes every N blocks")
    a("--base-steps", type=int, default=D.base_steps, help="pre-training steps of the tiny base")
    a("--train-steps", type=int, default=D.train_steps, help="SFT steps per miner and round")
    a("--eval-prompts", type=int, default=D.eval_prompts, help="prompts per validator round and miner gate")
    a("--benchmark-prompts", type=int, default=D.benchmark_prompts,
      help="fixed held-out questions every base is scored on, round after round (the bootstrap's format check)")
    a("--jobs", type=int, default=D.jobs, help="heavy processes at a time")
    a("--threads", type=int, default=D.threads, help="torch threads per process")
    a("--phase-timeout", type=float, default=D.phase_timeout, help="seconds before a phase's processes are stopped")
    a("--no-averager", dest="averager", action="store_false", help="run without the averager")
    a("--retrain", choices=RETRAIN, default=D.retrain,
      help="new-base: after round 1 a miner trains again only when the averager published a new base; always")
    a("--no-miner-gate", dest="miner_gate", action="store_false",
      help="miners publish with --force even when their adapter does not beat the base on their held-out check "
           "(default: they publish only adapters that beat it, as the miner's own rule says)")
    a("--live", dest="live", action="store_true", default=None, help="a live table (default on a terminal)")
    a("--plain", "--no-progress", dest="live", action="store_false", help="plain progress lines")
    parser.set_defaults(func=run)


def settings(args: argparse.Namespace) -> Settings:
    try:
        start_day = date.fromisoformat(args.start_day)
    except ValueError:
        raise CortexError(f"--clock.start-day must be YYYY-MM-DD, got {args.start_day!r}") from None
    return Settings(workdir=Path(args.workdir).expanduser(), miners=args.miners, validators=args.validators,
                    rounds=args.rounds, source=args.source, seed=args.seed, averager=args.averager,
                    miner_gate=args.miner_gate, retrain=args.retrain, netuid=args.netuid, block_time=args.block_time,
                    tempo=args.tempo, blocks_per_day=args.blocks_per_day, start_day=start_day,
                    base_steps=args.base_steps, train_steps=args.train_steps, eval_prompts=args.eval_prompts,
                    benchmark_prompts=args.benchmark_prompts, jobs=args.jobs, threads=args.threads,
                    phase_timeout=args.phase_timeout, live=args.live, force=args.force)


def _terminate(signum, frame):  # SIGTERM stops the run the way Ctrl-C does
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from cortex.localnet import summary as summary_mod
    from cortex.localnet.neurons import averager_available
    from cortex import workdir
    from cortex.localnet.run import Localnet
    from cortex.localnet.setup import OWNER
    from cortex.localnet.view import make_view

    s = settings(args)
    workdir.check(s.workdir, OWNER, force=s.force)  # before anything starts, not after the view is up
    if not getattr(args, "debug", False):  # the children log in detail; here, the view speaks
        logging.getLogger().setLevel(logging.WARNING)
    started = time.time()
    net = Localnet(s, None)
    view = make_view(net.supervisor, net.clock, s.live)
    net.view = view
    if s.averager and not averager_available():
        view.note("neurons/averager.py is not in this checkout: running without the averager")
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with view:
            net.run()
    except KeyboardInterrupt:
        view.line(f"interrupted: every process stopped; logs are in {s.workdir / 'logs'}")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    snap = summary_mod.take_snapshot(s)
    names = {m.hotkey: m.name for m in net.members.values()}
    failures = [str(f) for f in net.supervisor.failures]
    extra = {"seconds": round(time.time() - started, 1), "base": net.base, "failures": failures,
             "rounds": [{"round": r.round, "sync_block": r.sync_block, "seconds": r.seconds, "miners": r.miners,
                         "validators": r.validators} for r in net.rounds]}
    result = summary_mod.build(s, snap, names, extra)
    path = summary_mod.write(s, result, snap)
    view.line("")
    summary_mod.render(result, view.console)
    view.line(f"finished in {result['seconds'] / 60:.1f} min; summary in {path}; "
              f"`cortex leaderboard` shows the same numbers (state folders under {s.workdir})")
    return 1 if failures else 0

