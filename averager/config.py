"""The averager's configuration: one dataclass and its bittensor-style flags (docs/averager.md)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from averager.select import SelectConfig
from cortex import neuron
from cortex.errors import CortexError
from cortex.neuron import NeuronConfig
from cortex.protocol.competition import Competition, find_competition

METHODS = ("exact", "rank-r")


@dataclass(frozen=True, kw_only=True)
class AveragerConfig(NeuronConfig):
    """The shared neuron fields (``cortex.neuron``) and the averager's own."""

    competition: Competition
    repo: str | None = None  # where merged bases are published (default: the competition's base repo)
    state: Path = Path("~/.cortex/averager")
    scores: tuple[Path, ...] = ()  # validators' score tables (files or their state folders)
    margin: float = 0.0  # the merge must beat the base and the best single adapter by this much
    format_prompts: int = 96  # more prompts the format rule counts on (averager.gate.check_format; 0: the gate's only)
    max_format_loss: float = 0.02  # the share of the counted prompts the merge may answer out of format beyond the base
    select: SelectConfig = field(default_factory=SelectConfig)
    method: str = "exact"
    rank: int | None = None
    dtype: str = "same"
    every_epochs: int = 1
    once: bool = False
    device: str = "cpu"
    progress: bool = True
    benchmark: Path | None = None  # fixed questions (JSON lines) every round's base is scored on
    threads: int | None = None  # torch CPU threads (None: torch's default)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in METHODS:
            raise CortexError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if (self.method == "rank-r") != (self.rank is not None) or (self.rank is not None and self.rank < 1):
            raise CortexError("--method rank-r needs --rank R (R ≥ 1); --rank applies only to rank-r")
        if self.format_prompts < 0 or not 0.0 <= self.max_format_loss < 1.0:
            raise CortexError(f"--format-prompts must be ≥ 0 (got {self.format_prompts}) and --max-format-loss a share "
                              f"in [0, 1) (got {self.max_format_loss})")
        if self.margin < 0 or self.every_epochs < 1:
            raise CortexError("--margin must be ≥ 0 and --every-epochs ≥ 1")

    @property
    def base_repo(self) -> str:
        return self.repo or self.competition.base.repo


def add_args(parser: argparse.ArgumentParser) -> None:
    neuron.add_args(parser)  # --netuid, --wallet.*, --subtensor.network, --chain.path, --store, --source, --clock*, --wandb.*
    a = parser.add_argument
    a("--competition", "--competitions", dest="competition", required=True, help="competition id (built-in) or a competitions YAML/JSON file")
    a("--competition.id", dest="competition_id", default=None, help="the id to pick from a competitions file")
    a("--once", action="store_true", help="run one round and exit")
    a("--every-epochs", dest="every_epochs", type=int, default=1, help="a round every K tempos (service mode)")
    a("--repo", default=None, help="repo to publish merged bases to (default: the competition's base repo)")
    a("--state", default=None, help="state folder (default ~/.cortex/averager/NETUID-WALLET-HOTKEY)")
    a("--scores", action="append", default=[], metavar="PATH",
      help="a validator's score table (scores/latest.json) or state folder; repeat per validator")
    a("--margin", type=float, default=0.0, help="reward margin the merge must beat the base and best adapter by")
    a("--format-prompts", dest="format_prompts", type=int, default=96,
      help="prompts of the last 180 market days on which a passed merge's answers out of format are counted, with "
           "the gate's own, against the base's (0: the gate's prompts only)")
    a("--max-format-loss", dest="max_format_loss", type=float, default=0.02,
      help="the share of those prompts the merge may answer out of format beyond the base")
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
    a("--no-progress", "--plain", dest="progress", action="store_false", help="no progress bars")
    a("--threads", type=int, default=None, help="torch CPU threads for the merge, the gate and the benchmark")
    a("--benchmark", default=None, metavar="FILE",
      help="fixed questions (JSON lines: prompt and outcome columns) on which each round scores the base it "
           "started from and the base it leaves, so the base's progress reads across rounds")


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
    try:
        select = SelectConfig(args.max_inputs, args.max_weight, args.duplicate_cosine, args.outlier_factor)
    except ValueError as exc:
        raise CortexError(f"bad flag value: {exc}") from None
    return AveragerConfig(
        **neuron.neuron_fields(args), competition=find_competition(args.competition, args.competition_id),
        repo=args.repo, state=Path(args.state).expanduser() if args.state else neuron.state_folder("averager", args),
        scores=scores_files(args.scores), margin=args.margin, format_prompts=args.format_prompts,
        max_format_loss=args.max_format_loss, select=select, method=args.method, rank=args.rank,
        dtype=args.dtype, every_epochs=args.every_epochs, once=args.once, device=args.device, progress=args.progress,
        benchmark=Path(args.benchmark).expanduser() if args.benchmark else None, threads=args.threads,
    )
