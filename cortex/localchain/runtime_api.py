"""Runtime API calls and computed storage items of the embedded chain.

A subtensor node answers ``SubnetInfoRuntimeApi.get_metagraph`` and friends by
assembling storage; these functions do the same from the embedded chain's
storage, in the decoded shapes the SDK reads (u16 fractions, rao amounts).
"""

from __future__ import annotations

from typing import Any, Callable

from cortex.localchain import subnet as sn
from cortex.localchain.pallets import account
from cortex.localchain.store import Storage
from cortex.localchain.subnet import RAO, SM

RuntimeFn = Callable[[Storage, int, list], Any]
RUNTIME: dict[tuple[str, str], RuntimeFn] = {}


def runtime(api: str, method: str):
    def wrap(fn: RuntimeFn) -> RuntimeFn:
        RUNTIME[(api, method)] = fn
        return fn

    return wrap


@runtime("SubnetInfoRuntimeApi", "get_next_epoch_start_block")
def next_epoch_start_block(s: Storage, head: int, params: list) -> int | None:
    netuid = int(params[0])
    if not sn.subnet_exists(s, netuid):
        return None
    tempo = int(sn.param(s, netuid, "tempo"))
    if tempo == 0:
        return None
    return int(s.get(f"{SM}.LastEpochBlock", netuid, default=0)) + tempo


@runtime("SwapRuntimeApi", "current_alpha_price")
def current_alpha_price(s: Storage, head: int, params: list) -> int | None:
    """Every subnet's alpha trades at a fixed 1 TAO on the embedded chain (rao per alpha)."""
    return RAO if sn.subnet_exists(s, int(params[0])) else None


@runtime("SubnetInfoRuntimeApi", "get_metagraph")
def metagraph(s: Storage, head: int, params: list) -> dict | None:
    netuid = int(params[0])
    if not sn.subnet_exists(s, netuid):
        return None
    n = sn.n_neurons(s, netuid)
    keys = sn.hotkeys(s, netuid)
    stakes = [sn.hotkey_stake(s, netuid, hk) for hk in keys]
    p = sn.params(s, netuid)
    last_step = int(s.get(f"{SM}.LastEpochBlock", netuid, default=0))
    graph: dict[str, Any] = {
        "netuid": netuid,
        "name": s.get(f"{SM}.SubnetName", netuid),
        "symbol": s.get(f"{SM}.TokenSymbol", netuid),
        "identity": None,
        "network_registered_at": s.get(f"{SM}.NetworkRegisteredAt", netuid),
        "owner_hotkey": s.get(f"{SM}.SubnetOwnerHotkey", netuid),
        "owner_coldkey": s.get(f"{SM}.SubnetOwner", netuid),
        "block": head,
        "tempo": p.tempo,
        "last_step": last_step,
        "blocks_since_last_step": max(0, head - last_step),
        "num_uids": n,
        "max_uids": p.max_uids,
        "tao_in": sum(stakes),
        "alpha_in": sum(stakes),
        "moving_price": {"bits": 2**32},
        "hotkeys": keys,
        "coldkeys": [s.get(f"{SM}.Owner", hk) for hk in keys],
        "identities": [None] * n,
        "axons": [s.get(f"{SM}.Axons", netuid, hk) for hk in keys],
        "active": sn.vector(s, netuid, "Active"),
        "validator_permit": sn.vector(s, netuid, "ValidatorPermit"),
        "last_update": sn.vector(s, netuid, "LastUpdate"),
        "block_at_registration": [
            s.get(f"{SM}.BlockAtRegistration", netuid, uid, default=0) for uid in range(n)
        ],
        "rank": sn.vector(s, netuid, "Rank"),
        "trust": sn.vector(s, netuid, "Trust"),
        "consensus": sn.vector(s, netuid, "Consensus"),
        "incentives": sn.vector(s, netuid, "Incentive"),
        "dividends": sn.vector(s, netuid, "Dividends"),
        "validator_trust": sn.vector(s, netuid, "ValidatorTrust"),
        "pruning_score": sn.vector(s, netuid, "PruningScores"),
        "emission": sn.vector(s, netuid, "Emission"),
        "alpha_stake": stakes,
        "tao_stake": [0] * n,
        "total_stake": stakes,
        # hyperparameters, for callers that read the raw record
        "weights_version": p.weights_version,
        "weights_rate_limit": p.weights_rate_limit,
        "kappa": p.kappa,
        "bonds_moving_avg": p.bonds_moving_average,
        "max_validators": p.max_validators,
        "immunity_period": p.immunity_period,
        "min_allowed_weights": p.min_allowed_weights,
    }
    return graph


def computed_item(s: Storage, head: int, genesis_time: float, block_time: float,
                  item: str, params: list) -> tuple[bool, Any]:
    """Storage items a node derives rather than stores: ``(handled, value)``."""
    if item == "Timestamp.Now":
        return True, int((genesis_time + head * block_time) * 1000)
    if item == "System.Number":
        return True, head
    if item == f"{SM}.BlocksSinceLastStep" and params:
        return True, max(0, head - int(s.get(f"{SM}.LastEpochBlock", int(params[0]), default=0)))
    if item == "System.Account" and params:
        return True, account(s, str(params[0]))
    return False, None


CONSTANTS: dict[tuple[str, str], Any] = {
    ("Commitments", "MaxFields"): 3,
    ("Balances", "ExistentialDeposit"): 500,
    ("SubtensorModule", "InitialTempo"): 360,
}
