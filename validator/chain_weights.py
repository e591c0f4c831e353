"""Weights on chain: hotkeys to uids, and ``bt.SetWeights`` with the project's version key.

What the weights are is decided by the pure scoring (``validator.scoring``); this module only puts
them on chain, retrying after the blocks a rate-limit error names (or the subnet's
``weights_rate_limit`` minus the blocks since this validator's last update).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping

import bittensor as bt

log = logging.getLogger(__name__)
_RETRY = re.compile(r"[Rr]etry in ~?(\d+) blocks")


def to_uids(weights: Mapping[str, float], uids: Mapping[str, int]) -> dict[int, float]:
    return {uids[h]: w for h, w in sorted(weights.items(), key=lambda kv: uids.get(kv[0], -1))
            if h in uids and w > 0}


def _blocks_to_wait(sub: bt.Subtensor, netuid: int, message: str, own_uid: int | None) -> int:
    found = _RETRY.search(message)
    if found:
        return int(found.group(1))
    limit = int(sub.hyperparameters.weights_rate_limit(netuid) or 0)
    since = sub.epochs.blocks_since_last_update(netuid, own_uid) if own_uid is not None else None
    return max(1, limit - int(since or 0))


def set_weights(sub: bt.Subtensor, wallet: bt.Wallet, netuid: int, weights: Mapping[int, float], *,
                version_key: int, wait_blocks: Callable[[int], None], attempts: int = 4,
                own_uid: int | None = None) -> bool:
    """Set ``weights`` (uid → weight); on a rate limit wait the blocks the error names and retry."""
    uids = sorted(weights)
    values = [float(weights[u]) for u in uids]
    for attempt in range(1, attempts + 1):
        try:
            result = sub.execute(bt.SetWeights(netuid=netuid, uids=uids, weights=values, version_key=version_key),
                                 wallet)
        except bt.ChainError as exc:  # the SDK's preflight raises before submitting
            code, message = exc.code, str(exc)
        except bt.BittensorError as exc:  # weights the SDK refuses to send (all zero, bad uids)
            log.error("setting weights failed: %s", exc)
            return False
        else:
            if result.success:
                log.info("set weights on %d uids at block %s (version key %d)", len(uids), sub.block, version_key)
                return True
            code = result.error.code if result.error else None
            message = f"{result.error.name if result.error else ''}: {result.message}"
        if code != bt.ErrorCode.RATE_LIMITED or attempt == attempts:
            log.error("setting weights failed: %s", message)
            return False
        blocks = _blocks_to_wait(sub, netuid, message, own_uid)
        log.warning("weights rate-limited (%s); waiting %d blocks and retrying", message, blocks)
        wait_blocks(blocks)
    return False
