"""The validator's configuration: one dataclass, bittensor-style flags, and the version key.

Everything two validators must agree on to set the same weights lives either on chain, in the
competition definitions, or in the flags below that say how the market clock runs offline; the
rest (engine, device, paths, wandb) changes how fast a validator is, never what it decides.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from cortex import WEIGHTS_VERSION_KEY
from cortex.chain.connect import EMBEDDED
from cortex.errors import CortexError
from cortex.eval.evalset import DEFAULT_BLOCKS_PER_DAY, DEFAULT_START_DAY
from cortex.flags import add_clock_args, add_neuron_args
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


@dataclass(frozen=True)
class ValidatorConfig:
    netuid: int
    wallet_name: str = "default"
    wallet_hotkey: str = "default"
    wallet_path: str = "~/.bittensor/wallets"
    network: str = EMBEDDED
    chain_path: str | None = None
    once: bool = False
    engine: str = "transformers"
    device: str = "auto"  # auto: cuda when available, else cpu
    threads: int | None = None  # torch CPU threads (None: torch's default)
    store: str = "hf"  # local:DIR offline
    state: Path = Path("~/.cortex/validator/state.json")
    cache: Path | None = None  # adapters and bases; default: beside the state file
    source: str = "synthetic"  # market data: synthetic[:SEED] | csv:DIR | binance
    competitions: tuple[str, ...] = ("cortex-tiny",)  # built-in ids, or one YAML/JSON file
    clock: str = "simulated"  # simulated (offline replay from genesis) | calendar (live)
    start_day: date = DEFAULT_START_DAY  # simulated: the market day genesis sees closed
    blocks_per_day: int = DEFAULT_BLOCKS_PER_DAY  # simulated: one more day closes every N blocks
    alpha: float = 0.5  # smoothing: the weight of the NEW round (1 keeps only this round)
    round_blocks: int | None = None  # None: one round per tempo
    wandb: bool = True
    wandb_project: str = "cortex-validator"
    wandb_mode: str = "offline"
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
    debug: bool = False

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise CortexError(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.clock not in ("simulated", "calendar"):
            raise CortexError(f"--clock must be simulated or calendar, got {self.clock!r}")
        if not 0 < self.alpha <= 1:
            raise CortexError(f"--weights.alpha must be in (0, 1] (the new round's weight), got {self.alpha}")
        if self.blocks_per_day < 1 or (self.round_blocks is not None and self.round_blocks < 1):
            raise CortexError("--clock.blocks-per-day and --round.blocks must be at least 1")

    @property
    def state_dir(self) -> Path:
        return Path(self.state).expanduser().parent

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
    add_neuron_args(parser)
    add_clock_args(parser)  # --clock, --clock.start-day, --clock.blocks-per-day
    a = parser.add_argument
    a("--once", action="store_true", help="run one round, set weights and exit")
    a("--engine", choices=ENGINES, default="transformers",
      help="transformers (CPU or GPU, peft adapters swapped on one base) or vllm (GPU, multi-LoRA batches)")
    a("--device", default="auto", help="auto, cpu or cuda[:N] (transformers engine)")
    a("--threads", type=int, default=None, help="torch CPU threads")
    a("--store", default=None, help="model store: hf (default on real networks) or local:DIR (offline)")
    a("--state", default=None, help="state file (default ~/.cortex/validator/NETUID-WALLET-HOTKEY/state.json)")
    a("--cache", default=None, help="download cache (default: beside the state file)")
    a("--source", default=None, help="market data: synthetic[:SEED] (offline default), csv:DIR, binance")
    a("--competitions", nargs="+", default=None,
      help="built-in competition ids, or one YAML/JSON file (default: cortex-tiny offline, cortex-70b live)")
    a("--weights.alpha", dest="alpha", type=float, default=0.5,
      help="smoothing over rounds: the weight of the NEW round's scores, in (0, 1]")
    a("--round.blocks", dest="round_blocks", type=int, default=None, help="blocks per round (default: tempo)")
    a("--wandb.off", dest="wandb_off", action="store_true", help="do not log to wandb")
    a("--wandb.project", dest="wandb_project", default="cortex-validator")
    a("--wandb.mode", dest="wandb_mode", choices=("offline", "online"), default="offline",
      help="offline (default: files under the state folder, `wandb sync` later) or online")
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
    offline = args.network == EMBEDDED
    state = args.state or os.path.join(
        "~/.cortex/validator", f"{args.netuid}-{args.wallet_name}-{args.wallet_hotkey}", "state.json")
    try:
        start_day = date.fromisoformat(args.start_day)
    except ValueError:
        raise CortexError(f"--clock.start-day must be YYYY-MM-DD, got {args.start_day!r}") from None
    return ValidatorConfig(
        netuid=args.netuid, wallet_name=args.wallet_name, wallet_hotkey=args.wallet_hotkey,
        wallet_path=args.wallet_path, network=args.network, chain_path=args.chain_path,
        once=args.once, engine=args.engine, device=args.device, threads=args.threads,
        store=args.store or ("hf" if not offline else _offline_store(args.chain_path)),
        state=Path(state).expanduser(), cache=Path(args.cache) if args.cache else None,
        source=args.source or ("synthetic" if offline else "binance"),
        competitions=tuple(args.competitions or (("cortex-tiny",) if offline else ("cortex-70b",))),
        clock=args.clock or ("simulated" if offline else "calendar"), start_day=start_day,
        blocks_per_day=args.blocks_per_day, alpha=args.alpha, round_blocks=args.round_blocks,
        wandb=not args.wandb_off, wandb_project=args.wandb_project, wandb_mode=args.wandb_mode,
        max_loras=args.max_loras,
        dtype=args.dtype, vllm_tensor_parallel_size=args.vllm_tensor_parallel_size,  # engine options
        vllm_max_model_len=args.vllm_max_model_len, vllm_gpu_memory_utilization=args.vllm_gpu_memory_utilization, debug=args.debug,
    )


def _offline_store(chain_path: str | None) -> str:
    if chain_path is None:
        raise CortexError("offline validators need --store local:DIR (the miners' model store)")
    return f"local:{Path(chain_path).expanduser().parent / 'store'}"
