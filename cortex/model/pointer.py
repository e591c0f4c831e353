"""Which base a round uses (DESIGN.md §5): ``BaseRef``, the one type the validator, the averager and
the miner share; the averager's base pointer; committing a new one, and re-pointing to an earlier
revision (``cortex base rollback``).

The chain holds one commitment per hotkey, so the pointer's *history* is the model store's: every
merged base is an immutable revision of the base repo, never squashed, and the pointer can name
any of them again. A pointer's salted hash covers the base's model files only (``model_hash``:
config, safetensors, tokenizer, card), exactly what ``fetch_base`` downloads; ``BaseRef.fetch``
checks it, for every role the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

import bittensor as bt

from cortex.chain.commitments import OnChainCommitment, publish, read_all
from cortex.errors import CortexError
from cortex.hub.store import ModelStore, StoreError
from cortex.protocol.commitment import CommitmentError, ModelCommitment
from cortex.protocol.competition import Competition
from cortex.protocol.hashing import content_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaseRef:
    """The base a competition uses: from a pointer (``block``, ``hotkey``, ``commitment``), pinned, or
    the bootstrap's; ``path`` is its local folder once fetched and checked (or a miner's ``--base``)."""

    repo: str
    revision: str
    block: int | None = None  # the pointer's block
    hotkey: str | None = None  # who committed the pointer
    commitment: ModelCommitment | None = None  # the pointer itself, when the base came from one
    path: Path | None = None

    def __str__(self) -> str:
        return f"{self.repo}@{self.revision}"

    def verify(self, folder: Path) -> None:
        """Raise CortexError unless ``folder``'s model files are what the pointer committed (no pointer: nothing to check)."""
        if self.commitment is not None and not self.commitment.verify(model_hash(folder), self.hotkey or ""):
            raise CortexError(f"the base pointer's hash does not match {self}'s files: not using them")

    def fetch(self, store: ModelStore, cache_dir: Path | None = None) -> BaseRef:
        """This base with ``path`` set: its model files downloaded (or cached) and checked with :meth:`verify`."""
        from cortex.model.loading import fetch_base

        folder = Path(fetch_base(self.repo, self.revision, store, cache_dir=cache_dir)).resolve()
        self.verify(folder)
        return replace(self, path=folder)


def local_base(folder: Path, repo: str) -> BaseRef:
    """A base in a local folder (a miner's ``--base``): its revision is the folder's :func:`model_hash`."""
    folder = Path(folder).expanduser().resolve()
    return BaseRef(repo, model_hash(folder), path=folder)


def averager_hotkey(competition: Competition, owner_hotkey: str) -> str:
    return competition.base.averager_hotkey or owner_hotkey


def newest_pointer(records: Iterable[OnChainCommitment], competition: Competition,
                   owner_hotkey: str) -> OnChainCommitment | None:
    pointers = [r for r in records if r.commitment is not None
                and competition.is_base_pointer(r.commitment, r.hotkey, owner_hotkey)]
    return max(pointers, key=lambda r: (r.block, r.hotkey)) if pointers else None


def current_base(sub: bt.Subtensor, netuid: int, competition: Competition,
                 store: ModelStore | None = None) -> BaseRef | None:
    """The newest base pointer, else the pinned revision, else the newest bootstrap in ``store``.

    Reads the chain only when the competition follows base pointers; :func:`choose_base` decides.
    """
    records: Iterable[OnChainCommitment] = ()
    owner_hotkey = ""
    if competition.base.follow_pointer:
        graph = sub.subnets.metagraph(netuid, commitments=False)
        if graph is None:
            raise CortexError(f"subnet {netuid} does not exist on this chain: check --netuid")
        records, owner_hotkey = read_all(sub, netuid), str(graph.owner_hotkey)
    return choose_base(records, competition, owner_hotkey, store)


def choose_base(records: Iterable[OnChainCommitment], competition: Competition, owner_hotkey: str,
                store: ModelStore | None = None) -> BaseRef | None:
    """:func:`current_base` over commitments already read (a validator's snapshot); None while there is no base.

    A built-in genesis base (``cortex base bootstrap --store``) has no revision in the definition:
    until the first pointer, it is the newest revision of the base repo in ``store``.
    """
    ref = competition.base
    if ref.follow_pointer:
        newest = newest_pointer(records, competition, owner_hotkey)
        if newest is not None and newest.commitment is not None:
            c = newest.commitment
            return BaseRef(c.repo_id, c.revision, newest.block, newest.hotkey, c)
    if ref.revision is not None:
        return BaseRef(ref.repo, ref.revision)
    if ref.builtin and store is not None:
        try:
            return BaseRef(ref.repo, store.revisions(ref.repo)[0])
        except (StoreError, IndexError):
            return None
    return None


def model_hash(folder: Path) -> str:
    """The content hash a base pointer binds: over the folder's model files only."""
    from cortex.model.loading import model_files

    return content_hash(folder, model_files(p.name for p in Path(folder).iterdir() if p.is_file()))


def commit_pointer(sub: bt.Subtensor, wallet: bt.Wallet, netuid: int, competition: Competition, repo: str,
                   revision: str, folder: Path) -> tuple[ModelCommitment, int]:
    """Commit ``repo@revision`` (whose model files are in ``folder``) as the base; read it back.

    Idempotent: the same pointer already on chain is not sent again. Refuses a hotkey whose
    pointer validators and miners would ignore.
    """
    hotkey = wallet.hotkey.ss58_address
    graph = sub.subnets.metagraph(netuid, commitments=False)
    if graph is None:
        raise CortexError(f"subnet {netuid} does not exist on this chain: check --netuid")
    expected = averager_hotkey(competition, str(graph.owner_hotkey))
    if not competition.base.follow_pointer or hotkey != expected:
        raise CortexError(f"{competition.id}: validators follow base pointers from {expected} only "
                          f"(follow_pointer={competition.base.follow_pointer}); this wallet's hotkey is {hotkey}")
    try:
        commitment = ModelCommitment.for_content(competition.id, repo, revision, model_hash(folder), hotkey,
                                                 kind="base")
    except CommitmentError as exc:
        raise CortexError(f"cannot point at {repo}@{revision}: {exc}") from None
    block = publish(sub, wallet, netuid, commitment)
    stored = sub.identity.commitment(netuid, hotkey)
    if stored is None or ModelCommitment.decode(stored.data) != commitment:
        raise CortexError("the base pointer did not read back as committed; check the chain and run again")
    log.info("base pointer for %s: %s@%s at block %d", competition.id, repo, revision[:12], block)
    return commitment, block


def history(store: ModelStore, repo: str) -> list[str]:
    """Every revision of the base repo, newest first (nothing is ever squashed)."""
    try:
        return store.revisions(repo)
    except StoreError as exc:
        raise CortexError(f"cannot list {repo}'s revisions: {exc}") from None


def rollback(sub: bt.Subtensor, wallet: bt.Wallet, netuid: int, competition: Competition, store: ModelStore,
             revision: str, repo: str | None = None, cache_dir: Path | None = None) -> tuple[ModelCommitment, int]:
    """Re-point the competition's base to ``repo@revision``, an earlier revision in the store."""
    from cortex.model.loading import fetch_base

    repo = repo or _pointer_repo(sub, netuid, competition, store)
    known = history(store, repo)
    if revision not in known:
        listed = ", ".join(r[:12] for r in known[:8]) or "none"
        raise CortexError(f"{repo} has no revision {revision}; its revisions, newest first: {listed}")
    folder = fetch_base(repo, revision, store, cache_dir=cache_dir)
    return commit_pointer(sub, wallet, netuid, competition, repo, revision, folder)


def _pointer_repo(sub: bt.Subtensor, netuid: int, competition: Competition, store: ModelStore) -> str:
    current = current_base(sub, netuid, competition, store)
    return current.repo if current is not None else competition.base.repo
