"""Which base a command works on, from its flags: the one definition ``cortex serve`` and ``cortex export`` share.

``--base DIR`` (a folder: its revision is its model hash), ``--store SPEC --revision REV`` (a revision of
the base repo in a model store), or the chain's base pointer (``--chain.path`` / ``--subtensor.network``,
``--netuid``): the newest pointer, else the pinned revision, else the newest bootstrap in the store
(``cortex.model.pointer.current_base``), fetched and checked against the pointer's salted hash.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cortex.chain.connect import EMBEDDED
from cortex.errors import CortexError
from cortex.hub.store import ModelStore
from cortex.model.pointer import BaseRef
from cortex.protocol.competition import Competition


def add_base_args(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--base", metavar="DIR", help="a model folder (nothing is followed)")
    a("--store", default=None, help="model store: local:DIR or hf (default offline: local:<dir of --chain.path>/store)")
    a("--revision", default=None, help="this revision of --repo from --store (nothing is followed)")
    a("--repo", default=None, help="the base repo (default: the competition's)")
    a("--subtensor.network", dest="network", default=EMBEDDED, help="embedded (with --chain.path), finney, test …")
    a("--chain.path", dest="chain_path", default=None, help="the embedded chain's file: its base pointer")
    a("--netuid", type=int, default=1, help="the subnet's netuid (default 1)")
    a("--competition", default="cortex-tiny", help="built-in id, or a competitions YAML/JSON file")
    a("--competition.id", dest="competition_id", default=None, help="the id to pick from a file")


@dataclass(frozen=True)
class Chosen:
    ref: BaseRef  # with ``path`` set: the checked local folder
    store: ModelStore | None
    locate: Callable[[], BaseRef | None] | None  # the chain's current base, when the pointer was followed


def competition_of(args: argparse.Namespace) -> Competition:
    from cortex.protocol.competition import find_competition

    return find_competition(args.competition, args.competition_id)


def choose_base(args: argparse.Namespace, competition: Competition) -> Chosen:
    """The base the flags name, fetched and checked; a one-line CortexError when there is none."""
    from cortex.model.pointer import current_base, local_base
    from cortex.neuron import store_spec

    repo = args.repo or competition.base.repo
    if args.base:
        folder = Path(args.base).expanduser()
        if not folder.is_dir():
            raise CortexError(f"--base {args.base}: no model folder there")
        return Chosen(local_base(folder, repo), None, None)
    if args.network == EMBEDDED and not args.chain_path and not args.store:
        raise CortexError("say which base: --base DIR, --store SPEC --revision REV, or --chain.path FILE")
    if args.network == EMBEDDED and args.chain_path and not Path(args.chain_path).is_file():
        raise CortexError(f"no chain file at {args.chain_path}: create one with `cortex chain init --path …`")
    store = _open_store(store_spec(args.store, args.network, args.chain_path))
    if args.revision:
        return Chosen(BaseRef(repo, args.revision).fetch(store), store, None)
    from cortex.chain.connect import connect

    sub = connect(args.network, args.chain_path)

    def locate() -> BaseRef | None:
        return current_base(sub, args.netuid, competition, store)

    first = locate()
    if first is None:
        raise CortexError(f"{competition.id} has no base yet (no pointer, no pinned revision, nothing in the store)")
    return Chosen(first.fetch(store), store, locate)


def _open_store(spec: str) -> ModelStore:
    from cortex.hub.store import StoreError, open_store

    try:
        return open_store(spec)
    except StoreError as exc:
        raise CortexError(str(exc)) from None
