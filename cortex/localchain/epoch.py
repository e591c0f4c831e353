"""The embedded chain's block hook: run Yuma Consensus for every subnet whose tempo is up.

The schedule is subtensor's stateful one: a subnet's next epoch fires at
``LastEpochBlock + Tempo``. Each epoch reads the subnet's stake, weights, bonds
and permits from storage, runs :func:`cortex.localchain.yuma.epoch`, writes the
per-uid vectors exactly as a node stores them (u16 fractions, rao emissions),
and pays the tempo's emission: the owner's cut to the owner hotkey, incentive to
each miner's coldkey, dividends to each validator's stakers pro rata.
"""

from __future__ import annotations

import logging

import numpy as np

from cortex.localchain import subnet as sn
from cortex.localchain.store import Storage
from cortex.localchain.subnet import RAO, SM
from cortex.localchain.yuma import YumaParams, epoch

log = logging.getLogger(__name__)

MAX_CATCH_UP_EPOCHS = 64  # after a long idle spell, older missed epochs are skipped


def run_due_epochs(s: Storage, head: int) -> list[tuple[int, int]]:
    """Run every epoch due at or before ``head``; returns ``(netuid, block)`` of each run."""
    ran = []
    for netuid, _ in s.scan(f"{SM}.NetworksAdded"):
        netuid = int(netuid)
        tempo = int(sn.param(s, netuid, "tempo"))
        if tempo <= 0:
            continue
        last = int(s.get(f"{SM}.LastEpochBlock", netuid, default=0))
        due = (head - last) // tempo
        if due > MAX_CATCH_UP_EPOCHS:
            last += (due - MAX_CATCH_UP_EPOCHS) * tempo
            s.put(f"{SM}.LastEpochBlock", netuid, last)
        while last + tempo <= head:
            last += tempo
            run_epoch(s, netuid, last)
            ran.append((netuid, last))
    return ran


def _matrix(s: Storage, item: str, netuid: int, n: int) -> np.ndarray:
    m = np.zeros((n, n), np.float64)
    for uid, row in s.scan(f"{SM}.{item}", netuid):
        for dest, value in row:
            if int(uid) < n and int(dest) < n:
                m[int(uid), int(dest)] = value
    return m


def run_epoch(s: Storage, netuid: int, block: int) -> None:
    """One tempo of one subnet at ``block``."""
    p = sn.params(s, netuid)
    n = sn.n_neurons(s, netuid)
    keys = sn.hotkeys(s, netuid)
    emission_rao = float(p.emission_per_block_rao * p.tempo)
    owner_share = emission_rao * p.owner_cut
    if n:
        stake = np.array([sn.hotkey_stake(s, netuid, hk) / RAO for hk in keys])
        registered = np.array(
            [s.get(f"{SM}.BlockAtRegistration", netuid, uid, default=0) for uid in range(n)]
        )
        owner_uid = sn.uid_of(s, netuid, s.get(f"{SM}.SubnetOwnerHotkey", netuid))
        result = epoch(
            stake=stake,
            weights=_matrix(s, "Weights", netuid, n),
            bonds=_matrix(s, "Bonds", netuid, n),
            validator_permit=np.array(sn.vector(s, netuid, "ValidatorPermit"), bool),
            last_update=np.array(sn.vector(s, netuid, "LastUpdate"), np.float64),
            block_at_registration=registered,
            current_block=block,
            emission=emission_rao - owner_share,
            params=YumaParams(
                kappa=p.kappa,
                bonds_moving_average=p.bonds_moving_average,
                tempo=p.tempo,
                activity_cutoff=p.activity_cutoff,
                max_allowed_validators=p.max_validators,
            ),
            owner_uid=owner_uid,
        ).to_chain()
        _store(s, netuid, n, result)
        _pay(s, netuid, keys, result)
    owner_hotkey = s.get(f"{SM}.SubnetOwnerHotkey", netuid)
    if owner_hotkey and owner_share:
        sn.add_stake(s, netuid, owner_hotkey, s.get(f"{SM}.SubnetOwner", netuid), int(owner_share))
    s.put(f"{SM}.LastEpochBlock", netuid, block)
    s.put(f"{SM}.SubnetEpochIndex", netuid, int(s.get(f"{SM}.SubnetEpochIndex", netuid, default=0)) + 1)
    log.debug("epoch on netuid %d at block %d (%d uids)", netuid, block, n)


def _store(s: Storage, netuid: int, n: int, r) -> None:
    for item, values in (
        ("Rank", r.rank), ("Trust", r.trust), ("Consensus", r.consensus),
        ("Incentive", r.incentive), ("Dividends", r.dividends),
        ("ValidatorTrust", r.validator_trust), ("PruningScores", r.pruning_scores),
        ("Emission", r.emission),
    ):
        sn.set_vector(s, netuid, item, [int(v) for v in values])
    sn.set_vector(s, netuid, "ValidatorPermit", [bool(v) for v in r.validator_permit])
    sn.set_vector(s, netuid, "Active", [bool(v) for v in r.active])
    for uid in range(n):
        row = [[int(j), int(b)] for j, b in enumerate(r.bonds[uid]) if b]
        if row:
            s.put(f"{SM}.Bonds", netuid, uid, row)
        else:
            s.delete(f"{SM}.Bonds", netuid, uid)


def _pay(s: Storage, netuid: int, keys: list[str], r) -> None:
    """Incentive to each miner's own coldkey; dividends to the validator's stakers pro rata."""
    for uid, hotkey in enumerate(keys):
        owner = s.get(f"{SM}.Owner", hotkey)
        if r.server_emission[uid]:
            sn.add_stake(s, netuid, hotkey, owner, int(r.server_emission[uid]))
        dividend = int(r.validator_emission[uid])
        if not dividend:
            continue
        holders = sn.stakers(s, netuid, hotkey)
        total = sum(amount for _, amount in holders)
        if not total:
            sn.add_stake(s, netuid, hotkey, owner, dividend)
            continue
        paid = 0
        for coldkey, amount in holders:
            share = dividend * amount // total
            sn.add_stake(s, netuid, hotkey, coldkey, share)
            paid += share
        if dividend - paid:
            sn.add_stake(s, netuid, hotkey, owner, dividend - paid)
