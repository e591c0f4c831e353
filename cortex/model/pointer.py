"""Which base a round uses (DESIGN.md §5): ``BaseRef``, the one type the validator, the averager and
the miner share; the averager's base pointer; committing a new one, and re-pointing to an earlier
revision (``cortex base rollback``).

The chain holds one commitment per hotkey; which base was current at a past block is the chain's
state at that block (:func:`pointer_at`, a read pinned to the block: an archive node on a real
network, the extrinsics' replay on the embedded chain), so every validator, whenever it started,
judges a question day against the base that was current on that day (:func:`bases_at`). The
bases themselves are the model store's: every merged base is an immutable revision of the base repo,
never squashed, and the pointer can name any of them again. A pointer's salted hash covers the
base's model files only (``model_hash``: config, safetensors, tokenizer, card), exactly what
``fetch_base`` downloads; ``BaseRef.fetch`` checks it, for every role the same way. A pinned
revision is checked against the store's listing when a neuron starts (:func:`check_pinned`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Mapping

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


def pointer_at(sub: bt.Subtensor, netuid: int, competition: Competition, owner_hotkey: str, block: int,
               store: ModelStore | None = None) -> BaseRef | None:
    """The base current at ``block``: the averager's pointer as the chain held it then (a read pinned to
    ``block``), else what :func:`choose_base` falls back to (the pinned revision, or the bootstrap)."""
    records: list[OnChainCommitment] = []
    hotkey = averager_hotkey(competition, owner_hotkey)
    if competition.base.follow_pointer:
        try:
            held = sub.identity.commitment(netuid, hotkey, block=int(block))
        except Exception as exc:  # noqa: BLE001 - a node without the past state raises its own errors
            raise CortexError(f"cannot read the base pointer as it was at block {block} ({type(exc).__name__}: "
                              f"{exc}): past days' bases are read from the chain's state at their block, which "
                              "needs a node that keeps it (--subtensor.network archive)") from None
        if held is not None:
            try:
                records.append(OnChainCommitment(hotkey, None, int(held.block), held.data,
                                                 ModelCommitment.decode(held.data)))
            except CommitmentError:
                pass  # not a pointer (the hotkey's commitment is something else): as if there were none
    return choose_base(records, competition, owner_hotkey, store)


def bases_at(sub: bt.Subtensor, netuid: int, competition: Competition, owner_hotkey: str,
             blocks: Mapping[str, int], newest: BaseRef, store: ModelStore | None = None) -> dict[str, BaseRef]:
    """Key (a question day, say) → the base current at its block, from the chain's pointer history.

    ``newest`` is the base now (:func:`choose_base` over the head's commitments): a block at or after
    its pointer's block had it too, and with no pointer now there was none before; only blocks before
    the newest pointer are read from the chain's past (:func:`pointer_at`), once each.
    """
    read: dict[int, BaseRef] = {}
    out: dict[str, BaseRef] = {}
    for key, block in blocks.items():
        if newest.block is None or newest.block <= block:
            out[key] = newest
            continue
        if block not in read:
            found = pointer_at(sub, netuid, competition, owner_hotkey, max(int(block), 0), store)
            if found is None:
                raise CortexError(f"{competition.id}: no base was current at block {block} ({key}): no base pointer "
                                  "then and no pinned revision")
            read[block] = found
        out[key] = read[block]
    return out


def check_pinned(competition: Competition, store: ModelStore) -> None:
    """Raise CortexError (one line) unless the competition's pinned base revision is in its repo's listing.

    Run when a miner or validator starts, before any work: a pin the store does not list would fail
    only at the first download, or worse, after training. A built-in genesis base has no pin.
    """
    ref = competition.base
    if ref.revision is None:
        return
    listed = history(store, ref.repo)
    if ref.revision not in listed:
        newest = listed[0][:12] if listed else "none"
        raise CortexError(f"{competition.id}: the pinned base revision {ref.revision} is not in {ref.repo}'s listing "
                          f"({len(listed)} revisions, newest {newest}): check --store, and the competition definition's "
                          "base revision")


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
