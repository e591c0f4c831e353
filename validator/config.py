"""The validator's configuration: one dataclass, bittensor-style flags, and the version key.

Everything two validators must agree on to set the same weights lives either on chain, in the
competition definitions, or in the flags below that say how the market clock runs offline; the
rest (engine, device, paths, wandb) changes how fast a validator is, never what it decides.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from cortex import WEIGHTS_VERSION_KEY, neuron
from cortex.chain.connect import EMBEDDED
from cortex.errors import CortexError
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
    device: str = "auto"  # auto: cuda when available, else cpu
    threads: int | None = None  # torch CPU threads (None: torch's default)
    state: Path = Path("~/.cortex/validator/state.json")
    cache: Path | None = None  # adapters and bases; default: beside the state file
    competitions: tuple[str, ...] = ("cortex-tiny",)  # built-in ids, or one YAML/JSON file
    round_blocks: int | None = None  # None: one round per tempo
    max_loras: int = 8  # vllm: adapters sharing one generation pass
    # --- evaluation engine options (cortex.eval.engines.EngineOptions; flags in add_args' engine block) ---
    dtype: str = "auto"  # auto: float32 on a CPU, bfloat16 on a GPU
    vllm_tensor_parallel_size: int = 1
    vllm_max_model_len: int | None = None
    vllm_gpu_memory_utilization: float = 0.9

    @property
    def engine_options(self):
        """How the engine runs here (validated: a bad value is a one-line error)."""
        from cortex.eval.engines import EngineOptions

        return EngineOptions(device=self.device, dtype=self.dtype, max_loras=self.max_loras,
                             tensor_parallel_size=self.vllm_tensor_parallel_size,
                             max_model_len=self.vllm_max_model_len,
                             gpu_memory_utilization=self.vllm_gpu_memory_utilization)
    # --- end of the engine options ---

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
    a("--device", default="auto", help="auto, cpu or cuda[:N] (transformers engine)")
    a("--threads", type=int, default=None, help="torch CPU threads")
    a("--state", default=None, help="state file (default ~/.cortex/validator/NETUID-WALLET-HOTKEY/state.json)")
    a("--cache", default=None, help="download cache (default: beside the state file)")
    a("--competitions", nargs="+", default=None,
      help="built-in competition ids, or one YAML/JSON file (default: cortex-tiny offline, cortex-70b live)")
    a("--export-ledger", dest="export_ledger", default=None, metavar="FILE",
      help="write the outcome ledger's entries (every competition) as JSON to FILE and exit: replay a decision "
           "with validator.scoring.score_competition")
    a("--round.blocks", dest="round_blocks", type=int, default=None, help="blocks per round (default: tempo)")
    a("--vllm.max-loras", dest="max_loras", type=int, default=8, help="vllm: adapters per shared batch")
    # --- evaluation engine options (cortex.eval.engines.EngineOptions) ---
    a("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
      help="weights of the base: auto (float32 on a CPU, bfloat16 on a GPU)")
    a("--vllm.tensor-parallel-size", dest="vllm_tensor_parallel_size", type=int, default=1,
      help="vllm: GPUs the base is split over")
    a("--vllm.max-model-len", dest="vllm_max_model_len", type=int, default=None,
      help="vllm: prompt + answer tokens per sequence (default: the model's own limit)")
    a("--vllm.gpu-memory-utilization", dest="vllm_gpu_memory_utilization", type=float, default=0.9,
      help="vllm: share of each GPU's memory for weights and KV cache")
    # --- end of the engine options ---


def from_args(args: argparse.Namespace) -> ValidatorConfig:
    """The config the flags describe, with defaults that depend on the network."""
    shared = neuron.neuron_fields(args)
    offline = args.network == EMBEDDED
    state = Path(args.state).expanduser() if args.state else neuron.state_folder("validator", args) / "state.json"
    return ValidatorConfig(
        **shared, once=args.once, engine=args.engine, device=args.device, threads=args.threads, state=state,
        cache=Path(args.cache) if args.cache else None,
        competitions=tuple(args.competitions or (("cortex-tiny",) if offline else ("cortex-70b",))),
        round_blocks=args.round_blocks, max_loras=args.max_loras,
        dtype=args.dtype, vllm_tensor_parallel_size=args.vllm_tensor_parallel_size,  # engine options
        vllm_max_model_len=args.vllm_max_model_len, vllm_gpu_memory_utilization=args.vllm_gpu_memory_utilization,
    )
