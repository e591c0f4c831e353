"""Cortex: the shared core of the subnet (protocol, chain, model store, data, reward, model).

``__version__`` is the package's one version: setup.py reads it from this file, the
auto-updater (deploy/autoupdate.py) compares it before and after a pull, and
validators send :data:`WEIGHTS_VERSION_KEY`, derived from it, with every
``bt.SetWeights``. This file imports nothing heavy, so all three can read it cheaply.

Importing ``cortex`` also turns transformers' Hub kernels off for the process, before any model
is loaded (:mod:`cortex.hub_kernels`): no role downloads and runs kernel code unless its operator
asks for it.
"""

from cortex import hub_kernels as _hub_kernels

_hub_kernels.default_off()

__version__ = "0.1.0"


def version_key(version: str) -> int:
    """The weights version key of a ``MAJOR.MINOR.PATCH`` version: ``MAJOR·10⁶ + MINOR·10³ + PATCH``.

    Strictly increasing with the version as long as MINOR and PATCH stay below 1000 (refused
    otherwise), unlike the bittensor template's ``1000·MAJOR + 10·MINOR + PATCH``, which gives
    0.1.10 and 0.2.0 the same key.
    """
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"version {version!r} is not MAJOR.MINOR.PATCH")
    major, minor, patch = (int(p) for p in parts)
    if minor >= 1000 or patch >= 1000:
        raise ValueError(f"version {version!r}: MINOR and PATCH must stay below 1000")
    return major * 1_000_000 + minor * 1_000 + patch


# Sent with every bt.SetWeights. A subnet owner retires validators older than some release by
# raising the subnet's WeightsVersionKey (`sudo_set_weights_version_key`) to that release's key;
# the chain refuses keys below it.
WEIGHTS_VERSION_KEY = version_key(__version__)
