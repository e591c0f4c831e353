"""Model stores: where adapters are uploaded and fetched by immutable revision (docs/store.md)."""

from cortex.hub.store import (
    ModelStore,
    NotAllowed,
    RemoteFile,
    RevisionNotFound,
    StoreError,
    StoreUnavailable,
    TooLarge,
    open_store,
)

__all__ = [
    "ModelStore",
    "NotAllowed",
    "RemoteFile",
    "RevisionNotFound",
    "StoreError",
    "StoreUnavailable",
    "TooLarge",
    "open_store",
]
