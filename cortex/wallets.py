"""Wallets: offline key creation for the embedded chain, and loading with clear errors.

Offline wallets are the SDK's own wallet files (``~/.bittensor/wallets/NAME``),
written unencrypted and without prompts so that a local subnet can start with no
one at the keyboard. On a real network use ``btcli wallet create``, which
encrypts the coldkey.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import bittensor as bt

from cortex.errors import CortexError

DEFAULT_PATH = "~/.bittensor/wallets"


def create_wallet(name: str, hotkey: str = "default", path: str = DEFAULT_PATH) -> bt.Wallet:
    """Create (or reuse) an unencrypted coldkey and a hotkey; returns the wallet."""
    wallet = bt.Wallet(name, hotkey, path=str(Path(path).expanduser()))
    root = Path(path).expanduser() / name
    if not (root / "coldkey").exists():
        wallet.create_new_coldkey(use_password=False, suppress=True)
    if not (root / "hotkeys" / hotkey).exists():
        wallet.create_new_hotkey(use_password=False, suppress=True)
    return wallet


def load_wallet(name: str, hotkey: str = "default", path: str = DEFAULT_PATH) -> bt.Wallet:
    """Open an existing wallet, checking that its key files are there and readable."""
    root = Path(path).expanduser() / name
    for key_file, what in ((root / "coldkeypub.txt", "coldkey"), (root / "hotkeys" / hotkey, "hotkey")):
        if not key_file.exists():
            raise CortexError(
                f"wallet {name}/{hotkey}: no {what} file at {key_file}; create it with "
                f"`cortex wallet create --name {name} --hotkey {hotkey} --path {path}` "
                "(offline) or `btcli wallet create` (real network)"
            )
        if not os.access(key_file, os.R_OK):
            raise CortexError(f"wallet {name}/{hotkey}: {key_file} is not readable; check its permissions")
    wallet = bt.Wallet(name, hotkey, path=str(Path(path).expanduser()))
    try:
        wallet.hotkey  # noqa: B018 - decode now, so a broken file fails here and not mid-run
        wallet.coldkeypub  # noqa: B018
    except Exception as exc:  # noqa: BLE001 - the SDK raises several key-file errors
        raise CortexError(f"wallet {name}/{hotkey}: cannot read its keys ({exc})") from None
    return wallet


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="wallet_command", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="create an unencrypted wallet for offline use (no prompts)")
    create.add_argument("--name", required=True)
    create.add_argument("--hotkey", default="default")
    create.add_argument("--path", default=DEFAULT_PATH)
    create.set_defaults(func=_create)


def _create(args: argparse.Namespace) -> int:
    wallet = create_wallet(args.name, args.hotkey, args.path)
    print(f"wallet {args.name}/{args.hotkey}")
    print(f"  coldkey {wallet.coldkeypub.ss58_address}")
    print(f"  hotkey  {wallet.hotkey.ss58_address}")
    return 0
