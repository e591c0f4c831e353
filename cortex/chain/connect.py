"""Connecting to a chain: the real SDK client, on a real node or on the embedded chain."""

from __future__ import annotations

from pathlib import Path

import bittensor as bt

from cortex.errors import CortexError

REAL_NETWORKS = ("finney", "test", "local", "archive", "latent-lite")
EMBEDDED = "embedded"
# The label the SDK gets for the embedded chain: a ws:// form so it is never taken
# for a real network's name (token-symbol caches and explorer links key on it).
EMBEDDED_LABEL = "ws://embedded.invalid"


def connect(network: str, path: str | Path | None = None) -> bt.Subtensor:
    """``bittensor.Subtensor`` for ``network``: ``embedded`` opens the chain file at ``path``;
    ``finney``, ``test``, ``local`` and ``ws://…``/``wss://…`` reach a real node."""
    if network == EMBEDDED:
        if path is None:
            raise CortexError("--subtensor.network embedded needs --chain.path (the chain file)")
        from cortex.localchain.backend import EmbeddedSubstrate

        return bt.Subtensor(EMBEDDED_LABEL, substrate=EmbeddedSubstrate(path))
    if network in REAL_NETWORKS or network.startswith(("ws://", "wss://")):
        return bt.Subtensor(network)
    raise CortexError(
        f"unknown network {network!r}: use embedded (with --chain.path), finney, test, local, "
        "or a ws:// / wss:// endpoint"
    )
