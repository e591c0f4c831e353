"""Wallets: offline key creation for the embedded chain, a listing, and loading with clear errors.

Offline wallets are the SDK's own wallet files, written **unencrypted** and without prompts so that a
local subnet can start with no one at the keyboard. They live in a folder of the project's own
(``~/.cortex/wallets`` by default), never in ``~/.bittensor/wallets``, where ``btcli`` keeps real,
encrypted wallets; on a real network create keys with ``btcli wallet create`` and the neurons read
them from there. Wallet and hotkey names are checked (:data:`NAME_RULE`) so that no key is ever
written outside ``PATH/NAME``; a wallet that holds only a public key (watch-only) is never written to.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import bittensor as bt

from cortex.errors import CortexError

OFFLINE_PATH = "~/.cortex/wallets"  # `cortex wallet` and the embedded chain's neurons
BTCLI_PATH = "~/.bittensor/wallets"  # real networks: where btcli keeps its wallets
NAME_RULE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")  # no '/', no '..', no leading dot, no blanks
PUB_SUFFIX = "pub.txt"  # the SDK writes hotkeys/NAME and hotkeys/NAMEpub.txt


def default_path(network: str) -> str:
    """Where a wallet is looked for when ``--wallet.path`` is not given: the project's own folder on the
    embedded chain, btcli's on a real network."""
    from cortex.chain.connect import EMBEDDED

    return OFFLINE_PATH if network == EMBEDDED else BTCLI_PATH


def check_name(value: str, what: str = "wallet name") -> str:
    """``value`` if it is a safe file name (letters, digits, ``_ . -``, not starting with a dot, at most
    64 characters); otherwise a one-line :class:`CortexError`."""
    if not NAME_RULE.fullmatch(value or "") or (what == "hotkey" and value.endswith(PUB_SUFFIX)):
        raise CortexError(f"{what} {value!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-', "
                          f"not starting with a dot{' nor ending in pub.txt' if what == 'hotkey' else ''}")
    return value


def _folder(path: str | Path) -> Path:
    """The wallet folder ``path`` (expanded); a file there is a one-line error."""
    root = Path(path).expanduser()
    if root.exists() and not root.is_dir():
        raise CortexError(f"--wallet.path {root} is a file: give the folder that holds the wallets")
    return root


def _wallet_dir(name: str, path: str | Path) -> Path:
    root = _folder(path)
    folder = root / check_name(name)
    if folder.resolve().parent != root.resolve():  # belt and braces: NAME_RULE already keeps it inside
        raise CortexError(f"wallet name {name!r} leads outside {root}")
    return folder


def _existing(name: str, hotkey: str, path: str | Path) -> tuple[Path, bool, bool]:
    """The wallet's folder, whether it has a coldkey and whether it has the hotkey (names checked)."""
    folder = _wallet_dir(name, path)
    check_name(hotkey, "hotkey")
    if folder.exists() and not folder.is_dir():
        raise CortexError(f"wallet {name}: {folder} is a file, not a wallet folder")
    return folder, (folder / "coldkey").is_file(), (folder / "hotkeys" / hotkey).is_file()


def creation_status(name: str, hotkey: str = "default", path: str = OFFLINE_PATH) -> str:
    """What :func:`create_wallet` would do: ``created``, ``reused`` or ``reused coldkey, created hotkey``."""
    _, has_coldkey, has_hotkey = _existing(name, hotkey, path)
    return "reused" if has_coldkey and has_hotkey else "reused coldkey, created hotkey" if has_coldkey else "created"


def create_wallet(name: str, hotkey: str = "default", path: str = OFFLINE_PATH) -> bt.Wallet:
    """Create (or reuse) an unencrypted coldkey and a hotkey under ``path/name``; returns the wallet.

    A folder ``path/name`` without a coldkey (watch-only: ``coldkeypub.txt`` alone, or anything else) is
    refused before anything is written."""
    folder, has_coldkey, has_hotkey = _existing(name, hotkey, path)
    if folder.exists() and not has_coldkey and any(folder.iterdir()):
        what = "watch-only (coldkeypub.txt without a coldkey)" if (folder / "coldkeypub.txt").exists() \
            else "a folder without a coldkey"
        raise CortexError(f"wallet {name} at {folder} is {what}: cortex writes no keys into it; "
                          "choose another --wallet.name or --wallet.path")
    wallet = bt.Wallet(name, hotkey, path=str(folder.parent))
    try:
        if not has_coldkey:
            wallet.create_new_coldkey(use_password=False, suppress=True)
        if not has_hotkey:
            wallet.create_new_hotkey(use_password=False, suppress=True)
        wallet.coldkeypub  # noqa: B018 - decode now: a reused wallet with a broken key fails here
    except OSError as exc:
        raise CortexError(f"wallet {name}/{hotkey}: cannot write its keys under {folder} ({exc.strerror or exc})") \
            from None
    except Exception as exc:  # noqa: BLE001 - the SDK raises several key-file errors
        raise CortexError(f"wallet {name}/{hotkey}: cannot read its keys ({exc})") from None
    return wallet


def load_wallet(name: str, hotkey: str = "default", path: str = OFFLINE_PATH) -> bt.Wallet:
    """Open an existing wallet, checking that its key files are there and readable."""
    root = _wallet_dir(name, path)
    check_name(hotkey, "hotkey")
    for key_file, what in ((root / "coldkeypub.txt", "coldkey"), (root / "hotkeys" / hotkey, "hotkey")):
        if not key_file.exists():
            raise CortexError(
                f"wallet {name}/{hotkey}: no {what} file at {key_file}; create it with "
                f"`cortex wallet create --wallet.name {name} --wallet.hotkey {hotkey} --wallet.path {path}` "
                "(offline) or `btcli wallet create` (real network)"
            )
        if not os.access(key_file, os.R_OK):
            raise CortexError(f"wallet {name}/{hotkey}: {key_file} is not readable; check its permissions")
    wallet = bt.Wallet(name, hotkey, path=str(root.parent))
    try:
        wallet.hotkey  # noqa: B018 - decode now, so a broken file fails here and not mid-run
        wallet.coldkeypub  # noqa: B018
    except Exception as exc:  # noqa: BLE001 - the SDK raises several key-file errors
        raise CortexError(f"wallet {name}/{hotkey}: cannot read its keys ({exc})") from None
    return wallet


def list_wallets(path: str | Path) -> list[dict]:
    """Every wallet under ``path``: its name, coldkey ss58 (None if unreadable), whether it is
    watch-only (a public key and no coldkey), and its hotkeys with their ss58 (None if unreadable)."""
    root = _folder(path)
    wallets = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []:
        if not NAME_RULE.fullmatch(folder.name):
            continue  # not a wallet cortex could name (a hidden folder, …)
        wallet = bt.Wallet(folder.name, "default", path=str(root))
        hot_dir = folder / "hotkeys"
        names = sorted(p.name for p in hot_dir.iterdir() if p.is_file() and not p.name.endswith(PUB_SUFFIX)) \
            if hot_dir.is_dir() else []
        wallets.append({
            "name": folder.name, "coldkey": _ss58(lambda: wallet.coldkeypub),
            "watch_only": (folder / "coldkeypub.txt").is_file() and not (folder / "coldkey").is_file(),
            "hotkeys": {h: _ss58(lambda h=h: bt.Wallet(folder.name, h, path=str(root)).hotkeypub) for h in names},
        })
    return wallets


def _ss58(read) -> str | None:
    try:
        return read().ss58_address
    except Exception:  # noqa: BLE001 - a listing shows an unreadable key as unknown, it does not stop
        return None


def _wallet_args(p: argparse.ArgumentParser, *, name: bool) -> None:
    """``--wallet.name``/``--wallet.hotkey``/``--wallet.path``, the flags every neuron takes, with the
    older ``--name``/``--hotkey``/``--path`` kept as aliases."""
    if name:
        p.add_argument("--wallet.name", "--name", dest="name", required=True, help="the wallet (coldkey) name")
        p.add_argument("--wallet.hotkey", "--hotkey", dest="hotkey", default="default", help="the hotkey name")
    p.add_argument("--wallet.path", "--path", dest="path", default=OFFLINE_PATH,
                   help="the folder that holds the wallets (btcli's real wallets stay in ~/.bittensor/wallets)")


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="wallet_command", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="create an unencrypted wallet for offline use (no prompts), or reuse it")
    _wallet_args(create, name=True)
    create.set_defaults(func=_create)
    listing = sub.add_parser("list", help="the wallets in a folder: hotkeys, coldkey ss58, which are watch-only")
    _wallet_args(listing, name=False)
    listing.set_defaults(func=_list)


def _create(args: argparse.Namespace) -> int:
    status = creation_status(args.name, args.hotkey, args.path)
    wallet = create_wallet(args.name, args.hotkey, args.path)
    if status != "reused":
        print(f"warning: offline keys are written unencrypted (the coldkey's secret phrase in plain JSON) under "
              f"{Path(args.path).expanduser() / args.name}: use them on the embedded chain only; on a real network "
              "create keys with `btcli wallet create`", file=sys.stderr)
    print(f"{status} wallet {args.name}/{args.hotkey}")
    print(f"  coldkey {wallet.coldkeypub.ss58_address}")
    print(f"  hotkey  {wallet.hotkey.ss58_address}")
    return 0


def _list(args: argparse.Namespace) -> int:
    wallets = list_wallets(args.path)
    if not wallets:
        print(f"no wallets in {Path(args.path).expanduser()}")
        return 0
    for w in wallets:
        kind = "  (watch-only)" if w["watch_only"] else ""
        print(f"{w['name']}  coldkey {w['coldkey'] or '?'}{kind}")
        for hotkey, ss58 in w["hotkeys"].items():
            print(f"  hotkey {hotkey}  {ss58 or '?'}")
    return 0
