"""Model commitments on chain: write one through the SDK, read them all back strictly decoded.

Shared by the miner (adapter pointers), the averager (base pointers) and the
validator (discovery). Everything goes through ``bittensor``: the raw
``Commitments.set_commitment`` call to write, ``sub.subnets.commitments`` to read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import bittensor as bt

from cortex.errors import CortexError
from cortex.protocol.commitment import CommitmentError, ModelCommitment

log = logging.getLogger(__name__)


class CommitFailed(CortexError):
    """The chain refused the commitment, or it did not read back as written.

    ``code`` is the SDK's ``bt.ErrorCode`` of the refusal (``RATE_LIMITED``, ``NOT_AUTHORIZED``, ...):
    callers match on it, never on the message text.
    """

    def __init__(self, message: str, code: bt.ErrorCode | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class OnChainCommitment:
    """One hotkey's commitment as read from chain: decoded, or the reason it is not."""

    hotkey: str
    uid: int | None
    block: int
    raw: str
    commitment: ModelCommitment | None
    error: str | None = None


def commitment_call(netuid: int, text: str):
    data = text.encode("utf-8")
    return bt.calls.Commitments.set_commitment(netuid, {"fields": [[{f"Raw{len(data)}": data}]]})


def publish(sub: bt.Subtensor, wallet: bt.Wallet, netuid: int, commitment: ModelCommitment,
            *, attempts: int = 3, epoch_timeout: float = 600.0, check_existing: bool = True) -> int:
    """Commit ``commitment`` from ``wallet``'s hotkey; returns the block it was stored at.

    Idempotent: if the chain already holds exactly this string for the hotkey, nothing is
    sent (``check_existing=False``: the caller has just checked, as the miner's publish does).
    When the per-epoch space limit is hit, waits for the next epoch and retries.
    """
    hotkey = wallet.hotkey.ss58_address
    text = commitment.encode()
    current = sub.identity.commitment(netuid, hotkey) if check_existing else None
    if current is not None and current.data == text:
        log.info("commitment already on chain at block %d; not committing again", current.block)
        return current.block
    for attempt in range(attempts):
        result = sub.submit_call(commitment_call(netuid, text), wallet, signer="hotkey")
        if result.success:
            break
        name = result.error.name if result.error else None
        if name == "SpaceLimitExceeded" and attempt + 1 < attempts:
            log.warning("commitment space used up for this epoch; waiting for the next one")
            sub.wait_for_epoch(netuid, timeout=epoch_timeout)
            continue
        raise CommitFailed(f"the chain refused the commitment: {result.message} ({name})",
                           result.error.code if result.error else None)
    stored = sub.identity.commitment(netuid, hotkey)
    if stored is None or stored.data != text:
        raise CommitFailed("the commitment did not read back as written; check the chain and retry")
    return stored.block


def read_all(sub: bt.Subtensor, netuid: int) -> list[OnChainCommitment]:
    """Every commitment on the subnet, decoded strictly; undecodable ones carry the reason."""
    out = []
    for hotkey, record in sub.subnets.commitments(netuid).items():
        raw = record.value or ""
        try:
            decoded, error = ModelCommitment.decode(raw), None
        except CommitmentError as exc:
            decoded, error = None, str(exc)
        out.append(OnChainCommitment(hotkey, record.uid, int(record.block), raw, decoded, error))
    return sorted(out, key=lambda c: (c.block, c.hotkey))

