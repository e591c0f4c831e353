"""Discovery: the metagraph and every commitment, sorted into what a round scores (issue 5, steps 1-2).

Commitments are decoded strictly (``cortex.chain.commitments.read_all``). Malformed ones, ones for
a competition that is not running, and ones from hotkeys that are no longer registered are
ignored with a logged reason. A commitment for the competition at hand is a *candidate* when it
may answer at least the newest day's questions (``validator.questions.eligible_before``: committed
before that day closed, by the competition's delay); which older days it answers is decided per
question. Whether its salted hash verifies for its hotkey can only be known after the download
(``validator.fetch``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import bittensor as bt

from cortex.chain.commitments import OnChainCommitment, read_all
from cortex.hub.store import ModelStore
from cortex.protocol.commitment import ModelCommitment
from cortex.protocol.competition import Competition
from cortex.protocol.scores import Ignored

if TYPE_CHECKING:
    from cortex.model.pointer import BaseRef

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


def sync(sub: bt.Subtensor, netuid: int) -> Snapshot:
    """Read the metagraph and every commitment of the subnet."""
    graph = sub.subnets.metagraph(netuid, commitments=False)
    if graph is None:
        from cortex.errors import CortexError

        raise CortexError(f"subnet {netuid} does not exist on this chain: check --netuid")
    uids = {n.hotkey: int(n.uid) for n in graph.neurons}
    return Snapshot(int(graph.block), int(graph.tempo), str(graph.owner_hotkey), uids,
                    tuple(read_all(sub, netuid)))


def candidates(snap: Snapshot, competition: Competition, eligible_before: int,
               active: set[str]) -> tuple[list[Candidate], list[Ignored]]:
    """The competition's candidates (committed before block ``eligible_before``), and what is ignored (with reasons)."""
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
        elif record.block >= eligible_before:
            ignored.append(Ignored(record.hotkey, uid, record.block, "not_eligible",
                                   f"committed at block {record.block}; the newest question day takes "
                                   f"commitments before block {eligible_before}"))
        else:
            found.append(Candidate(record.hotkey, uid, record.block, c))
    return found, ignored


def resolve_base(snap: Snapshot, competition: Competition, store: ModelStore | None = None) -> BaseRef | None:
    """The newest base pointer for the competition, else the pinned base; None while there is neither.

    A built-in genesis base (``cortex base bootstrap --store``) has no revision in the definition:
    until the first pointer, it is the newest revision of the base repo in ``store``, as miners use.
    The choice is ``cortex.model.pointer.choose_base`` (what ``current_base`` decides), over the snapshot.
    """
    # imported here: cortex.model pulls in torch, which this module's other users do not need
    from cortex.model.pointer import choose_base

    return choose_base(snap.commitments, competition, snap.owner_hotkey, store)
