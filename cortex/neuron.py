"""The configuration every neuron shares: one dataclass, its bittensor-style flags, and the parts they open.

:class:`NeuronConfig` holds what the miner, the validator and the averager have in common: the
subnet (``--netuid``), the wallet (``--wallet.name``, ``--wallet.hotkey``, ``--wallet.path``), the
chain (``--subtensor.network``, and ``--chain.path`` for the embedded chain), the model store
(``--store``), the market data (``--source``), the market clock (``--clock``,
``--clock.start-day``, ``--clock.blocks-per-day``), wandb (``--wandb.off``, ``--wandb.project``,
``--wandb.mode``, ``--wandb.entity``) and ``--logging.debug``. Each role's config subclasses it
(``validator.config.ValidatorConfig``, ``averager.config.AveragerConfig``, ``miner.config.MinerConfig``)
and adds its own flags; :func:`add_args`
and :func:`neuron_fields` are the one place these flags are declared and their defaults decided:

- offline (``--subtensor.network embedded``): the store is ``local:<dir of --chain.path>/store``,
  the market data synthetic and the clock simulated;
- on a real network: the Hugging Face Hub, Binance and the calendar.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from cortex import hub_kernels
from cortex.chain.connect import EMBEDDED
from cortex.cliargs import int_at_least
from cortex.errors import CortexError
from cortex.eval.evalset import DEFAULT_BLOCKS_PER_DAY, DEFAULT_START_DAY
from cortex.wallets import OFFLINE_PATH, default_path
from cortex.wandb_log import MODES, WandbConfig

CLOCKS = ("simulated", "calendar")


@dataclass(frozen=True)
class NeuronConfig:
    """What every neuron is configured with; role configs subclass it (``kw_only`` for their own fields)."""

    netuid: int
    # wallet
    wallet_name: str = "default"
    wallet_hotkey: str = "default"
    wallet_path: str = OFFLINE_PATH  # the embedded chain's; btcli's (~/.bittensor/wallets) on a real network
    # chain and store
    network: str = EMBEDDED  # embedded (offline, with chain_path), finney, test, local or ws://…
    chain_path: str | None = None  # the embedded chain's file
    store: str = "hf"  # hf | local:DIR
    # market data and clock
    source: str | None = "synthetic"  # synthetic[:SEED] | csv:DIR | binance (the miner: None = its config's)
    clock: str = "simulated"  # simulated (offline replay from genesis) | calendar (live)
    start_day: date = DEFAULT_START_DAY  # simulated: the market day genesis sees closed
    blocks_per_day: int = DEFAULT_BLOCKS_PER_DAY  # simulated: one more day closes every N blocks
    # logs
    wandb: WandbConfig = field(default_factory=WandbConfig)
    debug: bool = False

    def __post_init__(self) -> None:
        if self.clock not in CLOCKS:
            raise CortexError(f"--clock must be simulated or calendar, got {self.clock!r}")
        if self.blocks_per_day < 1:
            raise CortexError("--clock.blocks-per-day must be at least 1")

    @property
    def offline(self) -> bool:
        return self.network == EMBEDDED

    def open_chain(self):
        from cortex.chain.connect import connect

        return connect(self.network, self.chain_path)

    def open_wallet(self):
        from cortex.wallets import load_wallet

        return load_wallet(self.wallet_name, self.wallet_hotkey, self.wallet_path)

    def open_store(self):
        from cortex.hub.store import open_store

        return open_store(self.store)

    def market_clock(self, sub: Any, sync_block: int):
        """The market clock these flags describe, at ``sync_block`` (``cortex.eval.evalset.market_clock``)."""
        from cortex.eval.evalset import market_clock

        return market_clock(self.clock, sub, sync_block, self.start_day, self.blocks_per_day)


def add_args(parser: argparse.ArgumentParser, *, store: bool = True, source: bool = True, clock: bool = True,
             wandb: bool = True) -> None:
    """The shared flags (the groups a command does not take can be left out)."""
    a = parser.add_argument
    a("--netuid", type=int_at_least(0, 65535), required=True, help="the subnet's netuid")
    a("--wallet.name", dest="wallet_name", default="default")
    a("--wallet.hotkey", dest="wallet_hotkey", default="default")
    a("--wallet.path", dest="wallet_path", default=None,
      help="folder of the wallets (default: ~/.cortex/wallets offline, btcli's ~/.bittensor/wallets on a real network)")
    a("--subtensor.network", dest="network", default=EMBEDDED,
      help="embedded (offline, with --chain.path), finney, test, local or ws://…")
    a("--chain.path", dest="chain_path", default=None,
      help="the embedded chain's file (with --subtensor.network embedded)")
    a("--logging.debug", dest="debug", action="store_true")
    hub_kernels.add_flag(parser)
    if store:
        a("--store", default=None, help="model store: hf (default on real networks) or local:DIR "
                                        "(default offline: local:<dir of --chain.path>/store)")
    if source:
        a("--source", default=None, help="market data: synthetic[:SEED] (offline default), csv:DIR, binance "
                                         "(live default)")
    if clock:
        a("--clock", choices=CLOCKS, default=None,
          help="market clock: simulated replays the source from genesis (offline default); calendar is live")
        a("--clock.start-day", dest="start_day", default=DEFAULT_START_DAY.isoformat(),
          help="simulated clock: the market day genesis sees closed (YYYY-MM-DD)")
        a("--clock.blocks-per-day", dest="blocks_per_day", type=int, default=DEFAULT_BLOCKS_PER_DAY,
          help="simulated clock: blocks per market day")
    if wandb:
        a("--wandb.off", dest="wandb_off", action="store_true", help="do not log to wandb")
        a("--wandb.project", dest="wandb_project", default=None, help="wandb project (default: cortex-ROLE)")
        a("--wandb.mode", dest="wandb_mode", choices=MODES, default="offline",
          help="offline (default: files under the state folder, `wandb sync` later) or online")
        a("--wandb.entity", dest="wandb_entity", default=None, help="wandb team or user")


def store_spec(store: str | None, network: str, chain_path: str | None) -> str:
    """``--store`` as given, else the Hub on a real network, else ``local:<dir of --chain.path>/store``."""
    if store:
        return store
    if network != EMBEDDED:
        return "hf"
    if chain_path is None:
        raise CortexError("--subtensor.network embedded needs --chain.path (or --store local:DIR)")
    return f"local:{Path(chain_path).expanduser().resolve().parent / 'store'}"


def neuron_fields(args: argparse.Namespace, *, need_store: bool = True, default_source: bool = True) -> dict[str, Any]:
    """:class:`NeuronConfig`'s fields from parsed flags, with the defaults that depend on the network.

    ``need_store=False`` (the miner's ``--offline``) leaves an unset store unresolved (``hf``);
    ``default_source=False`` leaves an unset ``--source`` as None (the miner resolves it from its config).
    """
    hub_kernels.apply_flag(args)  # before any model loads: the operator's explicit opt-in, logged
    offline = args.network == EMBEDDED
    given = getattr(args, "store", None)
    try:
        start_day = date.fromisoformat(getattr(args, "start_day", DEFAULT_START_DAY.isoformat()))
    except ValueError:
        raise CortexError(f"--clock.start-day must be YYYY-MM-DD, got {args.start_day!r}") from None
    source = getattr(args, "source", None)
    if source is None and default_source:
        source = "synthetic" if offline else "binance"
    return dict(
        netuid=args.netuid, wallet_name=args.wallet_name, wallet_hotkey=args.wallet_hotkey,
        wallet_path=args.wallet_path or default_path(args.network), network=args.network, chain_path=args.chain_path,
        store=store_spec(given, args.network, args.chain_path) if need_store else (given or "hf"),
        source=source, clock=getattr(args, "clock", None) or ("simulated" if offline else "calendar"),
        start_day=start_day, blocks_per_day=getattr(args, "blocks_per_day", DEFAULT_BLOCKS_PER_DAY),
        wandb=WandbConfig(enabled=not getattr(args, "wandb_off", True), project=getattr(args, "wandb_project", None),
                          mode=getattr(args, "wandb_mode", "offline"), entity=getattr(args, "wandb_entity", None)),
        debug=args.debug,
    )


def state_folder(role: str, args: argparse.Namespace) -> Path:
    """The default state folder of ``role``: ``~/.cortex/ROLE/NETUID-WALLET-HOTKEY``."""
    return Path("~/.cortex", role, f"{args.netuid}-{args.wallet_name}-{args.wallet_hotkey}").expanduser()


def from_args(args: argparse.Namespace, **kw: Any) -> NeuronConfig:
    return NeuronConfig(**neuron_fields(args, **kw))


def setup_logging(debug: bool) -> None:
    """Standard ``logging`` for a neuron: INFO, or DEBUG with ``--logging.debug``."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
