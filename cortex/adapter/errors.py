"""The one error an untrusted adapter raises, and the stable reason codes it carries.

Every refusal, wherever it happens (the validator's round, the miner's pre-publish check, the
averager's fetch), is an :class:`AdapterRejected` whose ``reason`` is one of :data:`REASONS`;
docs/adapter-checks.md says what each one means. Score tables and averager round records store the
code, so it never changes meaning.
"""

from __future__ import annotations

from cortex.errors import CortexError

REASONS = (
    # the store (cortex.adapter.fetch: listing and download)
    "revision_not_found", "not_allowed", "store_unavailable", "download_failed",
    # files (before anything is opened)
    "pickle", "extra_files", "not_regular_file", "too_large", "missing_config", "missing_weights",
    "hash_mismatch",
    # adapter_config.json
    "bad_config", "config_key_not_allowed", "remote_code", "adapter_type", "adds_trainable",
    "replaces_embeddings", "target_not_allowed", "rank_over_limit",
    # the safetensors header and tensor names
    "bad_header", "dtype", "unexpected_tensor", "missing_tensor", "shape_mismatch", "rank_mismatch",
    # tensor values
    "non_finite", "norm_too_large", "bad_magnitude",
    # the base it was trained on (its config's revision) is not the current one
    "stale_base",
)


class AdapterRejected(CortexError):
    """An adapter that fails a check: it scores zero (and is never merged), with ``reason`` recorded."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"adapter rejected ({reason}): {message}")
        self.reason, self.message = reason, message
