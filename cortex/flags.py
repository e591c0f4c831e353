"""The bittensor-style flags every neuron takes, and the parts they open."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import bittensor as bt

from cortex.chain.connect import EMBEDDED, connect
from cortex.errors import CortexError
from cortex.wallets import DEFAULT_PATH, load_wallet


def add_neuron_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--netuid", type=int, required=True, help="the subnet's netuid")
    parser.add_argument("--wallet.name", dest="wallet_name", default="default")
    parser.add_argument("--wallet.hotkey", dest="wallet_hotkey", default="default")
    parser.add_argument("--wallet.path", dest="wallet_path", default=DEFAULT_PATH)
    parser.add_argument("--subtensor.network", dest="network", default=EMBEDDED,
                        help="embedded (offline, with --chain.path), finney, test, local or ws://…")
    parser.add_argument("--chain.path", dest="chain_path", default=None,
                        help="the embedded chain's file (with --subtensor.network embedded)")
    parser.add_argument("--logging.debug", dest="debug", action="store_true")


def setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def open_chain(args: argparse.Namespace) -> bt.Subtensor:
    return connect(args.network, args.chain_path)


def open_wallet(args: argparse.Namespace) -> bt.Wallet:
    return load_wallet(args.wallet_name, args.wallet_hotkey, args.wallet_path)


def store_spec(store: str | None, network: str, chain_path: str | None) -> str:
    """``--store`` as given, else the Hub on a real network, else ``local:<dir of --chain.path>/store``."""
    if store:
        return store
    if network != EMBEDDED:
        return "hf"
    if chain_path is None:
        raise CortexError("--subtensor.network embedded needs --chain.path (or --store local:DIR)")
    return f"local:{Path(chain_path).expanduser().resolve().parent / 'store'}"


def add_clock_args(parser: argparse.ArgumentParser) -> None:
    """The market clock's flags (``cortex.eval.evalset``): simulated offline, the calendar live."""
    from cortex.eval.evalset import DEFAULT_BLOCKS_PER_DAY, DEFAULT_START_DAY

    parser.add_argument("--clock", choices=("simulated", "calendar"), default=None,
                        help="market clock: simulated replays the source from genesis (offline default); "
                             "calendar is live")
    parser.add_argument("--clock.start-day", dest="start_day", default=DEFAULT_START_DAY.isoformat(),
                        help="simulated clock: the market day genesis sees closed (YYYY-MM-DD)")
    parser.add_argument("--clock.blocks-per-day", dest="blocks_per_day", type=int, default=DEFAULT_BLOCKS_PER_DAY,
                        help="simulated clock: blocks per market day")
