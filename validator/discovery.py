"""Discovery: the metagraph and every commitment, sorted into what a round scores (issue 5, steps 1-2).

Commitments are decoded strictly (``cortex.chain.commitments.read_all``). Malformed ones, ones for
a competition that is not running, and ones from hotkeys that are no longer registered are
ignored with a logged reason. A commitment for the competition at hand is a *candidate* when it
is old enough (``cortex.eval.evalset.is_eligible``): committed before the evaluation window's start
(minus the competition's delay), so it cannot have seen the outcomes it is scored on. Whether
its salted hash verifies for its hotkey can only be known after the download (``validator.fetch``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import bittensor as bt

from cortex.chain.commitments import OnChainCommitment, read_all
from cortex.eval.evalset import EvalWindow, is_eligible
from cortex.hub.store import ModelStore
from cortex.protocol.commitment import ModelCommitment
from cortex.protocol.competition import Competition

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """The subnet as one round sees it: who holds which uid, and every commitment."""

    block: int
    tempo: int
    owner_hotkey: str
    uids: dict[str, int]  # hotkey → uid
    commitments: tuple[OnChainCommitment, ...]


@dataclass(frozen=True)
class Candidate:
    """A decoded, eligible commitment for one competition; its hash is verified after download."""

    hotkey: str
    uid: int
    block: int
    commitment: ModelCommitment

    @property
    def model_key(self) -> str:
        """What evaluations are keyed by: one evaluation per (repo, revision), however many hotkeys."""
        return f"{self.commitment.repo_id}@{self.commitment.revision}"


@dataclass(frozen=True)
class Ignored:
    """A commitment that is not scored this round, and why (``reason`` is a stable code)."""

    hotkey: str
    uid: int | None
    block: int
    reason: str  # malformed_commitment | inactive_competition | not_eligible
    detail: str


@dataclass(frozen=True)
class BaseChoice:
    """The base a competition is scored on this round: pinned, or named by a base pointer."""

    repo: str
    revision: str
    pointer: ModelCommitment | None = None  # the averager's commitment, when followed
    hotkey: str | None = None  # who committed the pointer

    def __str__(self) -> str:
        return f"{self.repo}@{self.revision[:12]}"


def sync(sub: bt.Subtensor, netuid: int) -> Snapshot:
    """Read the metagraph and every commitment of the subnet."""
    graph = sub.subnets.metagraph(netuid, commitments=False)
    if graph is None:
        from cortex.errors import CortexError

        raise CortexError(f"subnet {netuid} does not exist on this chain: check --netuid")
    uids = {n.hotkey: int(n.uid) for n in graph.neurons}
    return Snapshot(int(graph.block), int(graph.tempo), str(graph.owner_hotkey), uids,
                    tuple(read_all(sub, netuid)))


def candidates(snap: Snapshot, competition: Competition, win: EvalWindow,
               active: set[str]) -> tuple[list[Candidate], list[Ignored]]:
    """The competition's eligible candidates, and what is ignored (with reasons)."""
    found, ignored = [], []
    for record in snap.commitments:
        uid = snap.uids.get(record.hotkey)
        if uid is None:
            log.debug("%s: not registered any more; its commitment is ignored", record.hotkey)
            continue
        c = record.commitment
        if c is None:
            ignored.append(Ignored(record.hotkey, uid, record.block, "malformed_commitment", record.error or ""))
        elif c.kind == "base":
            continue  # base pointers are not models (resolve_base reads them)
        elif c.competition_id not in active:
            ignored.append(Ignored(record.hotkey, uid, record.block, "inactive_competition",
                                   f"competition {c.competition_id!r} is not running at this block"))
        elif c.competition_id != competition.id:
            continue  # scored in its own competition's pass
        elif not is_eligible(record.block, win):
            ignored.append(Ignored(record.hotkey, uid, record.block, "not_eligible",
                                   f"committed at block {record.block}; this round scores commitments before "
                                   f"block {win.eligible_before_block} (eval window from {win.start})"))
        else:
            found.append(Candidate(record.hotkey, uid, record.block, c))
    return found, ignored


def resolve_base(snap: Snapshot, competition: Competition, store: ModelStore | None = None) -> BaseChoice | None:
    """The newest base pointer for the competition, else the pinned base; None while there is neither.

    A built-in genesis base (``cortex base bootstrap --store``) has no revision in the definition:
    until the first pointer, it is the newest revision of the base repo in ``store``, as miners use.
    The choice is ``cortex.model.pointer.choose_base`` (what ``current_base`` decides), over the snapshot.
    """
    # imported here: cortex.model pulls in torch, which this module's other users do not need
    from cortex.model.pointer import choose_base

    base = choose_base(snap.commitments, competition, snap.owner_hotkey, store)
    return None if base is None else BaseChoice(base.repo, base.revision, base.commitment, base.hotkey)
