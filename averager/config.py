"""The averager's configuration: one dataclass and its bittensor-style flags (docs/averager.md)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from averager.select import SelectConfig
from cortex.chain.connect import EMBEDDED
from cortex.errors import CortexError
from cortex.eval.evalset import DEFAULT_BLOCKS_PER_DAY, DEFAULT_START_DAY
from cortex.flags import add_clock_args, add_neuron_args, store_spec
from cortex.protocol.competition import Competition, find_competition

METHODS = ("exact", "rank-r")


@dataclass(frozen=True)
class AveragerConfig:
    netuid: int
    competition: Competition
    wallet_name: str = "default"
    wallet_hotkey: str = "default"
    wallet_path: str = "~/.bittensor/wallets"
    network: str = EMBEDDED
    chain_path: str | None = None
    store: str = "hf"
    repo: str | None = None  # where merged bases are published (default: the competition's base repo)
    state: Path = Path("~/.cortex/averager")
    scores: tuple[Path, ...] = ()  # validators' score tables (files or their state folders)
    source: str = "synthetic"
    clock: str = "simulated"
    start_day: date = DEFAULT_START_DAY
    blocks_per_day: int = DEFAULT_BLOCKS_PER_DAY
    margin: float = 0.0  # the merge must beat the base and the best single adapter by this much
    select: SelectConfig = field(default_factory=SelectConfig)
    method: str = "exact"
    rank: int | None = None
    dtype: str = "same"
    every_epochs: int = 1
    once: bool = False
    device: str = "cpu"
    progress: bool = True
    wandb: bool = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise CortexError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if (self.method == "rank-r") != (self.rank is not None) or (self.rank is not None and self.rank < 1):
            raise CortexError("--method rank-r needs --rank R (R ≥ 1); --rank applies only to rank-r")
        if self.margin < 0 or self.every_epochs < 1:
            raise CortexError("--margin must be ≥ 0 and --every-epochs ≥ 1")

    @property
    def base_repo(self) -> str:
        return self.repo or self.competition.base.repo


def add_args(parser: argparse.ArgumentParser) -> None:
    add_neuron_args(parser)
    add_clock_args(parser)
    a = parser.add_argument
    a("--competition", required=True, help="competition id (built-in) or a competitions YAML/JSON file")
    a("--competition.id", dest="competition_id", default=None, help="the id to pick from a competitions file")
    a("--once", action="store_true", help="run one round and exit")
    a("--every-epochs", dest="every_epochs", type=int, default=1, help="a round every K tempos (service mode)")
    a("--store", default=None, help="model store: hf, or local:DIR (default beside --chain.path offline)")
    a("--repo", default=None, help="repo to publish merged bases to (default: the competition's base repo)")
    a("--state", default=None, help="state folder (default ~/.cortex/averager/NETUID-WALLET-HOTKEY)")
    a("--scores", action="append", default=[], metavar="PATH",
      help="a validator's score table (scores/latest.json) or state folder; repeat per validator")
    a("--source", default=None, help="market data for the gate: synthetic[:SEED] (offline), csv:DIR, binance")
    a("--margin", type=float, default=0.0, help="reward margin the merge must beat the base and best adapter by")
    a("--max-weight", dest="max_weight", type=float, default=0.5, help="cap on one miner's merge weight")
    a("--max-inputs", dest="max_inputs", type=int, default=8, help="adapters merged at most")
    a("--duplicate-cosine", dest="duplicate_cosine", type=float, default=0.99,
      help="updates at least this similar (cosine) are duplicates: the earliest commitment is kept")
    a("--outlier-factor", dest="outlier_factor", type=float, default=4.0,
      help="updates with a norm over this many times the median are dropped")
    a("--method", choices=METHODS, default="exact", help="exact merge, or a rank-r delta folded into the base")
    a("--rank", type=int, default=None, help="rank of the rank-r delta")
    a("--dtype", choices=("same", "float32", "bfloat16", "float16"), default="same",
      help="dtype of the merged base (same: the base's)")
    a("--device", default="cpu", help="device for the gate's evaluations (cpu, cuda[:N])")
    a("--no-progress", dest="progress", action="store_false", help="no progress bars")
    a("--wandb.off", dest="wandb_off", action="store_true", help="do not log rounds to wandb")


def scores_files(paths: list[str]) -> tuple[Path, ...]:
    """``--scores`` entries as table files: a folder means its ``scores/latest.json`` (or ``latest.json``)."""
    out = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            path = next((p for p in (path / "scores" / "latest.json", path / "latest.json") if p.is_file()),
                        path / "scores" / "latest.json")
        out.append(path)
    return tuple(out)


def from_args(args: argparse.Namespace) -> AveragerConfig:
    offline = args.network == EMBEDDED
    state = args.state or os.path.join("~/.cortex/averager", f"{args.netuid}-{args.wallet_name}-{args.wallet_hotkey}")
    try:
        start_day = date.fromisoformat(args.start_day)
        select = SelectConfig(args.max_inputs, args.max_weight, args.duplicate_cosine, args.outlier_factor)
    except ValueError as exc:
        raise CortexError(f"bad flag value: {exc}") from None
    return AveragerConfig(
        netuid=args.netuid, competition=find_competition(args.competition, args.competition_id),
        wallet_name=args.wallet_name, wallet_hotkey=args.wallet_hotkey, wallet_path=args.wallet_path,
        network=args.network, chain_path=args.chain_path, store=store_spec(args.store, args.network, args.chain_path),
        repo=args.repo, state=Path(state).expanduser(), scores=scores_files(args.scores),
        source=args.source or ("synthetic" if offline else "binance"),
        clock=args.clock or ("simulated" if offline else "calendar"), start_day=start_day,
        blocks_per_day=args.blocks_per_day, margin=args.margin, select=select, method=args.method, rank=args.rank,
        dtype=args.dtype, every_epochs=args.every_epochs, once=args.once, device=args.device,
        progress=args.progress, wandb=not args.wandb_off,
    )
