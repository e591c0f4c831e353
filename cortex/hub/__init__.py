"""Model stores: where adapters are uploaded and fetched by immutable revision (docs/store.md)."""

from cortex.hub.store import (
    ADAPTER_FILES,
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
    "ADAPTER_FILES",
    "ModelStore",
    "NotAllowed",
    "RemoteFile",
    "RevisionNotFound",
    "StoreError",
    "StoreUnavailable",
    "TooLarge",
    "open_store",
]
