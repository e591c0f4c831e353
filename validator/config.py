"""The validator's configuration: one dataclass, bittensor-style flags, and the version key.

Everything two validators must agree on to set the same weights lives either on chain, in the
competition definitions, or in the flags below that say how the market clock runs offline; the
rest (engine, device, paths, wandb) changes how fast a validator is, never what it decides.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from cortex import WEIGHTS_VERSION_KEY, neuron
from cortex.chain.connect import EMBEDDED
from cortex.errors import CortexError
from cortex.eval import options as engine
from cortex.eval.options import EngineOptions
from cortex.neuron import NeuronConfig
from cortex.protocol.competition import (
    BUILTIN_COMPETITIONS,
    CompetitionSchedule,
    get_competition,
    load_competitions,
)

# The weights version key sent with every bt.SetWeights: derived from the package version
# (cortex.version_key; 1000 for 0.1.0). The embedded chain's subnets start at 0
# (`cortex chain init --weights-version`), which accepts it.
WEIGHTS_VERSION = WEIGHTS_VERSION_KEY

ENGINES = ("transformers", "vllm")


@dataclass(frozen=True, kw_only=True)
class ValidatorConfig(NeuronConfig):
    """The shared neuron fields (``cortex.neuron``) and the validator's own."""

    once: bool = False
    engine: str = "transformers"
    engine_options: EngineOptions = field(default_factory=EngineOptions)  # --device, --dtype, --vllm.*
    threads: int | None = None  # torch CPU threads (None: torch's default)
    state: Path = Path("~/.cortex/validator/state.json")
    cache: Path | None = None  # adapters and bases; default: beside the state file
    competitions: tuple[str, ...] = ("cortex-tiny",)  # built-in ids, or one YAML/JSON file
    round_blocks: int | None = None  # None: one round per tempo

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.engine not in ENGINES:
            raise CortexError(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.round_blocks is not None and self.round_blocks < 1:
            raise CortexError("--round.blocks must be at least 1")

    @property
    def state_dir(self) -> Path:
        return Path(self.state).expanduser().parent

    @property
    def ledger(self) -> Path:
        """The outcome ledger (SQLite) beside the state file."""
        return self.state_dir / "ledger.sqlite"

    @property
    def cache_dir(self) -> Path:
        return Path(self.cache).expanduser() if self.cache else self.state_dir / "cache"

    def schedule(self) -> CompetitionSchedule:
        """The competitions to score: one definitions file, or built-in ids."""
        if len(self.competitions) == 1 and self.competitions[0] not in BUILTIN_COMPETITIONS:
            path = Path(self.competitions[0]).expanduser()
            if path.suffix.lower() in (".yaml", ".yml", ".json") or path.exists():
                return load_competitions(path)
        return CompetitionSchedule(tuple(get_competition(c) for c in self.competitions))


def add_args(parser: argparse.ArgumentParser) -> None:
    neuron.add_args(parser)  # --netuid, --wallet.*, --subtensor.network, --chain.path, --store, --source, --clock*, --wandb.*
    a = parser.add_argument
    a("--once", action="store_true", help="run one round, set weights and exit")
    a("--engine", choices=ENGINES, default="transformers",
      help="transformers (CPU or GPU, peft adapters swapped on one base) or vllm (GPU, multi-LoRA batches)")
    a("--threads", type=int, default=None, help="torch CPU threads")
    a("--state", default=None, help="state folder (its state.json; scores/ and the ledger beside it), or a .json "
                                    "state file (default ~/.cortex/validator/NETUID-WALLET-HOTKEY)")
    a("--cache", default=None, help="download cache (default: beside the state file)")
    a("--competition", "--competitions", dest="competitions", nargs="+", default=None,
      help="built-in competition ids, or one YAML/JSON file (default: cortex-tiny offline, cortex-70b live)")
    a("--export-ledger", dest="export_ledger", default=None, metavar="FILE",
      help="write the outcome ledger's entries (every competition) as JSON to FILE and exit: replay a decision "
           "with validator.scoring.score_competition")
    a("--round.blocks", dest="round_blocks", type=int, default=None, help="blocks per round (default: tempo)")
    engine.add_args(parser)  # --device, --dtype, --vllm.* (cortex.eval.options.EngineOptions)


def from_args(args: argparse.Namespace) -> ValidatorConfig:
    """The config the flags describe, with defaults that depend on the network."""
    shared = neuron.neuron_fields(args)
    offline = args.network == EMBEDDED
    state = Path(args.state).expanduser() if args.state else neuron.state_folder("validator", args)
    if state.suffix != ".json":  # --state names a folder, as for the averager and the leaderboard
        state = state / "state.json"
    return ValidatorConfig(
        **shared, once=args.once, engine=args.engine, engine_options=engine.from_args(args), threads=args.threads,
        state=state, cache=Path(args.cache) if args.cache else None,
        competitions=tuple(args.competitions or (("cortex-tiny",) if offline else ("cortex-70b",))),
        round_blocks=args.round_blocks,
    )
