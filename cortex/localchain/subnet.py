"""Subnet state on the embedded chain: hyperparameters, neurons and their per-uid vectors.

Values are stored under the same storage item names and in the same decoded
shapes a subtensor node serves, so the SDK's reads work unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cortex.localchain.store import Storage

RAO = 10**9
U16_MAX = 65535
SM = "SubtensorModule"

# Per-uid vectors the epoch writes (name -> default element).
NEURON_VECTORS: dict[str, Any] = {
    "Rank": 0,
    "Trust": 0,
    "Consensus": 0,
    "Incentive": 0,
    "Dividends": 0,
    "ValidatorTrust": 0,
    "PruningScores": 0,
    "Emission": 0,
    "LastUpdate": 0,
    "ValidatorPermit": False,
    "Active": True,
}


@dataclass(frozen=True)
class SubnetParams:
    """Hyperparameters of a subnet at creation (the owner can change some later)."""

    tempo: int = 360
    weights_rate_limit: int = 100
    weights_version: int = 0
    kappa: int = 32767  # u16 fraction: the stake share consensus must reach (≈ 0.5)
    bonds_moving_average: int = 900_000  # of 1_000_000: old bonds keep 90% per epoch
    max_validators: int = 64
    max_uids: int = 256
    immunity_period: int = 5000
    min_allowed_weights: int = 1
    max_weights_limit: int = U16_MAX
    activity_cutoff: int = 5000
    burn_rao: int = RAO  # registration cost, burned
    serving_rate_limit: int = 0
    max_regs_per_block: int = 64
    emission_per_block_rao: int = RAO  # alpha emitted into the subnet per block
    owner_cut: float = 0.18  # share of emission paid to the owner before miners/validators
    commitment_max_space: int = 3100  # bytes per account per epoch (Commitments.MaxSpace)


# Storage item for each SubnetParams field.
PARAM_ITEMS: dict[str, str] = {
    "tempo": "Tempo",
    "weights_rate_limit": "WeightsSetRateLimit",
    "weights_version": "WeightsVersionKey",
    "kappa": "Kappa",
    "bonds_moving_average": "BondsMovingAverage",
    "max_validators": "MaxAllowedValidators",
    "max_uids": "MaxAllowedUids",
    "immunity_period": "ImmunityPeriod",
    "min_allowed_weights": "MinAllowedWeights",
    "max_weights_limit": "MaxWeightsLimit",
    "activity_cutoff": "ActivityCutoff",
    "burn_rao": "Burn",
    "serving_rate_limit": "ServingRateLimit",
    "max_regs_per_block": "MaxRegistrationsPerBlock",
    "emission_per_block_rao": "EmissionPerBlock",
    "owner_cut": "OwnerCut",
    "commitment_max_space": "CommitmentMaxSpace",
}


def subnet_exists(s: Storage, netuid: int) -> bool:
    return s.get(f"{SM}.NetworksAdded", netuid, default=False)


def param(s: Storage, netuid: int, name: str) -> Any:
    return s.get(f"{SM}.{PARAM_ITEMS[name]}", netuid)


def params(s: Storage, netuid: int) -> SubnetParams:
    return SubnetParams(**{name: param(s, netuid, name) for name in PARAM_ITEMS})


def create_subnet(
    s: Storage, netuid: int, owner_coldkey: str, owner_hotkey: str, p: SubnetParams, block: int
) -> None:
    """Create a subnet with its hyperparameters (genesis, or `register_network`)."""
    for name, value in asdict(p).items():
        s.put(f"{SM}.{PARAM_ITEMS[name]}", netuid, value)
    s.put(f"{SM}.NetworksAdded", netuid, True)
    s.put(f"{SM}.SubnetOwner", netuid, owner_coldkey)
    s.put(f"{SM}.SubnetOwnerHotkey", netuid, owner_hotkey)
    s.put(f"{SM}.NetworkRegisteredAt", netuid, block)
    s.put(f"{SM}.NetworkRegistrationAllowed", netuid, True)
    s.put(f"{SM}.CommitRevealWeightsEnabled", netuid, False)
    s.put(f"{SM}.SubnetEpochConsensus", netuid, "Yuma")
    s.put(f"{SM}.LastEpochBlock", netuid, block)
    s.put(f"{SM}.SubnetEpochIndex", netuid, 0)
    s.put(f"{SM}.SubnetworkN", netuid, 0)
    s.put(f"{SM}.TokenSymbol", netuid, "0x" + f"α{netuid}".encode().hex())
    s.put(f"{SM}.SubnetName", netuid, "0x" + f"cortex-{netuid}".encode().hex())
    for item in NEURON_VECTORS:
        s.put(f"{SM}.{item}", netuid, [])
    s.put(f"{SM}.TotalNetworks", len(s.scan(f"{SM}.NetworksAdded")))


def n_neurons(s: Storage, netuid: int) -> int:
    return int(s.get(f"{SM}.SubnetworkN", netuid, default=0))


def hotkeys(s: Storage, netuid: int) -> list[str]:
    return [s.get(f"{SM}.Keys", netuid, uid) for uid in range(n_neurons(s, netuid))]


def vector(s: Storage, netuid: int, item: str) -> list:
    return list(s.get(f"{SM}.{item}", netuid, default=[]))


def set_vector(s: Storage, netuid: int, item: str, values: list) -> None:
    s.put(f"{SM}.{item}", netuid, list(values))


def uid_of(s: Storage, netuid: int, hotkey: str) -> int | None:
    return s.get(f"{SM}.Uids", netuid, hotkey)


def register_neuron(s: Storage, netuid: int, hotkey: str, coldkey: str, block: int) -> int:
    """Give ``hotkey`` a uid: a new one while there is room, else replace the weakest."""
    n = n_neurons(s, netuid)
    if n < param(s, netuid, "max_uids"):
        uid = n
        s.put(f"{SM}.SubnetworkN", netuid, n + 1)
        for item, default in NEURON_VECTORS.items():
            values = vector(s, netuid, item)
            values.append(block if item == "LastUpdate" else default)
            set_vector(s, netuid, item, values)
    else:
        uid = _prune_candidate(s, netuid, block)
        old = s.get(f"{SM}.Keys", netuid, uid)
        s.delete(f"{SM}.Uids", netuid, old)
        s.delete(f"{SM}.Axons", netuid, old)
        s.delete(f"{SM}.Weights", netuid, uid)
        s.delete(f"{SM}.Bonds", netuid, uid)
        for item, default in NEURON_VECTORS.items():
            values = vector(s, netuid, item)
            values[uid] = block if item == "LastUpdate" else default
            set_vector(s, netuid, item, values)
        _drop_weights_on(s, netuid, uid)
    s.put(f"{SM}.Keys", netuid, uid, hotkey)
    s.put(f"{SM}.Uids", netuid, hotkey, uid)
    s.put(f"{SM}.BlockAtRegistration", netuid, uid, block)
    if s.get(f"{SM}.Owner", hotkey) is None:
        s.put(f"{SM}.Owner", hotkey, coldkey)
    return uid


def _prune_candidate(s: Storage, netuid: int, block: int) -> int:
    """The non-immune uid with the lowest pruning score (ties: older registration, lower uid)."""
    immunity = param(s, netuid, "immunity_period")
    scores = vector(s, netuid, "PruningScores")
    candidates = []
    for uid, score in enumerate(scores):
        registered = s.get(f"{SM}.BlockAtRegistration", netuid, uid, default=0)
        if block - registered >= immunity:
            candidates.append((score, registered, uid))
    if not candidates:  # everyone immune: the chain still prunes the weakest
        candidates = [(score, 0, uid) for uid, score in enumerate(scores)]
    return min(candidates)[2]


def _drop_weights_on(s: Storage, netuid: int, uid: int) -> None:
    for row_uid, row in s.scan(f"{SM}.Weights", netuid):
        kept = [[dest, w] for dest, w in row if dest != uid]
        if len(kept) != len(row):
            s.put(f"{SM}.Weights", netuid, row_uid, kept)


def hotkey_stake(s: Storage, netuid: int, hotkey: str) -> int:
    """Total alpha (rao) staked on a hotkey in a subnet."""
    return int(s.get(f"{SM}.TotalHotkeyAlpha", hotkey, netuid, default=0))


def add_stake(s: Storage, netuid: int, hotkey: str, coldkey: str, amount: int) -> None:
    """Credit (or, negative, debit) ``amount`` alpha rao of ``coldkey``'s stake on ``hotkey``."""
    current = int(s.get(f"{SM}.Alpha", hotkey, coldkey, netuid, default=0))
    if current + amount < 0:
        raise ValueError("stake would go negative")
    if current + amount == 0:
        s.delete(f"{SM}.Alpha", hotkey, coldkey, netuid)
    else:
        s.put(f"{SM}.Alpha", hotkey, coldkey, netuid, current + amount)
    s.put(f"{SM}.TotalHotkeyAlpha", hotkey, netuid, hotkey_stake(s, netuid, hotkey) + amount)


def stakers(s: Storage, netuid: int, hotkey: str) -> list[tuple[str, int]]:
    """``(coldkey, alpha rao)`` of everyone staked on ``hotkey`` in ``netuid``."""
    return [
        (coldkey, int(amount))
        for (coldkey, net), amount in s.scan(f"{SM}.Alpha", hotkey)
        if int(net) == netuid
    ]
