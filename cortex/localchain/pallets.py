"""What the embedded chain does with each extrinsic: the rules of the pallets a subnet uses.

Each handler takes the transaction's storage, the block, the signer and the
call's parameters, and either applies the call or raises :class:`DispatchError`
with the error *name* a subtensor node reports (``SettingWeightsTooFast``,
``IncorrectWeightVersionKey``, ``AccountNotAllowedCommit``, …), so the SDK maps
it to the same ``ChainError`` code it gives for a real node.

Price model (documented in docs/chain.md): every subnet's alpha trades at a fixed
1 TAO, with no slippage and no fees. Emission is in alpha.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from cortex.localchain import subnet as sn
from cortex.localchain.extrinsic import decode_value
from cortex.localchain.store import Storage
from cortex.localchain.subnet import RAO, SM, U16_MAX

MIN_STAKE_RAO = 2_000_000  # the chain's minimum stake operation (0.002 TAO)
NETWORK_LOCK_RAO = 100 * RAO
COMMITMENT_MAX_FIELDS = 3
COMMITMENT_MIN_BYTES = 100  # every set_commitment uses at least this much space
RAW_MAX_BYTES = 128  # the Commitments pallet's largest Raw variant


class DispatchError(Exception):
    """A call that the chain refused; ``name`` is the pallet error's name."""

    def __init__(self, name: str, detail: str = ""):
        super().__init__(f"{name}: {detail}" if detail else name)
        self.name = name
        self.detail = detail


Handler = Callable[[Storage, int, str, dict], list[dict]]
HANDLERS: dict[tuple[str, str], Handler] = {}


def handles(module: str, *functions: str):
    def wrap(fn: Handler) -> Handler:
        for function in functions:
            HANDLERS[(module, function)] = fn
        return fn

    return wrap


def dispatch(s: Storage, block: int, signer: str, module: str, function: str, params: dict) -> list[dict]:
    """Apply one call; returns its events. Raises DispatchError when the chain refuses it."""
    handler = HANDLERS.get((module, function))
    if handler is None:
        raise DispatchError("CallFiltered", f"{module}.{function} is not supported by the embedded chain")
    return handler(s, block, signer, params)


def event(module: str, name: str, **attributes: Any) -> dict:
    return {"module_id": module, "event_id": name, "attributes": attributes}


# --- Balances ------------------------------------------------------------------


def account(s: Storage, ss58: str) -> dict:
    return s.get(
        "System.Account",
        ss58,
        default={"nonce": 0, "consumers": 0, "providers": 0, "sufficients": 0,
                 "data": {"free": 0, "reserved": 0, "frozen": 0, "flags": 0}},
    )


def free_balance(s: Storage, ss58: str) -> int:
    return int(account(s, ss58)["data"]["free"])


def credit(s: Storage, ss58: str, amount: int) -> None:
    record = account(s, ss58)
    free = int(record["data"]["free"]) + int(amount)
    if free < 0:
        raise DispatchError("NotEnoughBalanceToStake" if amount < 0 else "Overflow")
    record["data"]["free"] = free
    record["providers"] = max(1, int(record["providers"]))
    s.put("System.Account", ss58, record)
    s.put("Balances.TotalIssuance", int(s.get("Balances.TotalIssuance", default=0)) + int(amount))


def _dest(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("Id") or next(iter(value.values()))
    return str(value)


@handles("Balances", "transfer_keep_alive", "transfer_allow_death")
def transfer(s: Storage, block: int, signer: str, p: dict) -> list[dict]:
    amount = int(p["value"])
    if free_balance(s, signer) < amount:
        raise DispatchError("InsufficientBalance", "the sender's free balance is too low")
    credit(s, signer, -amount)
    credit(s, _dest(p["dest"]), amount)
    return [event("Balances", "Transfer", **{"from": signer, "to": _dest(p["dest"]), "amount": amount})]


# --- Registration and staking ------------------------------------------------------


def _require_subnet(s: Storage, netuid: int) -> None:
    if not sn.subnet_exists(s, netuid):
        raise DispatchError("SubnetNotExists", f"netuid {netuid}")


@handles(SM, "burned_register")
def burned_register(s: Storage, block: int, signer: str, p: dict) -> list[dict]:
    netuid, hotkey = int(p["netuid"]), str(p["hotkey"])
    _require_subnet(s, netuid)
    if not s.get(f"{SM}.NetworkRegistrationAllowed", netuid, default=True):
        raise DispatchError("SubNetRegistrationDisabled")
    if sn.uid_of(s, netuid, hotkey) is not None:
        raise DispatchError("HotKeyAlreadyRegisteredInSubNet")
    owner = s.get(f"{SM}.Owner", hotkey)
    if owner is not None and owner != signer:
        raise DispatchError("NonAssociatedColdKey", "the hotkey belongs to another coldkey")
    regs = s.get(f"{SM}.RegistrationsThisBlock", netuid, default=[block, 0])
    count = regs[1] if regs[0] == block else 0
    if count >= sn.param(s, netuid, "max_regs_per_block"):
        raise DispatchError("TooManyRegistrationsThisBlock")
    cost = int(sn.param(s, netuid, "burn_rao"))
    if free_balance(s, signer) < cost:
        raise DispatchError("NotEnoughBalanceToStake", "the coldkey cannot pay the registration cost")
    credit(s, signer, -cost)
    s.put(f"{SM}.RegistrationsThisBlock", netuid, [block, count + 1])
    uid = sn.register_neuron(s, netuid, hotkey, signer, block)
    return [event(SM, "NeuronRegistered", netuid=netuid, uid=uid, hotkey=hotkey)]


@handles(SM, "register_network")
def register_network(s: Storage, block: int, signer: str, p: dict) -> list[dict]:
    if free_balance(s, signer) < NETWORK_LOCK_RAO:
        raise DispatchError("CannotAffordLockCost")
    netuid = 1 + max([int(n) for n, _ in s.scan(f"{SM}.NetworksAdded")] or [0])
    credit(s, signer, -NETWORK_LOCK_RAO)
    sn.create_subnet(s, netuid, signer, str(p["hotkey"]), sn.SubnetParams(), block)
    sn.register_neuron(s, netuid, str(p["hotkey"]), signer, block)
    return [event(SM, "NetworkAdded", netuid=netuid, mechanism=1)]


def _stake_checks(s: Storage, netuid: int, hotkey: str) -> None:
    _require_subnet(s, netuid)
    if s.get(f"{SM}.Owner", hotkey) is None:
        raise DispatchError("HotKeyAccountNotExists")


@handles(SM, "add_stake", "add_stake_limit")
def add_stake(s: Storage, block: int, signer: str, p: dict) -> list[dict]:
    netuid, hotkey, amount = int(p["netuid"]), str(p["hotkey"]), int(p["amount_staked"])
    _stake_checks(s, netuid, hotkey)
    if amount < MIN_STAKE_RAO:
        raise DispatchError("AmountTooLow")
    if p.get("limit_price") is not None and int(p["limit_price"]) < RAO:
        raise DispatchError("SlippageTooHigh", "the price (1 TAO per alpha) is above the limit")
    if free_balance(s, signer) < amount:
        raise DispatchError("NotEnoughBalanceToStake")
    credit(s, signer, -amount)
    sn.add_stake(s, netuid, hotkey, signer, amount)
    return [event(SM, "StakeAdded", coldkey=signer, hotkey=hotkey, tao=amount, alpha=amount, netuid=netuid)]


@handles(SM, "remove_stake", "remove_stake_limit")
def remove_stake(s: Storage, block: int, signer: str, p: dict) -> list[dict]:
    netuid, hotkey, amount = int(p["netuid"]), str(p["hotkey"]), int(p["amount_unstaked"])
    _stake_checks(s, netuid, hotkey)
    if amount < MIN_STAKE_RAO:
        raise DispatchError("AmountTooLow")
    if p.get("limit_price") is not None and int(p["limit_price"]) > RAO:
        raise DispatchError("SlippageTooHigh", "the price (1 TAO per alpha) is below the limit")
    held = int(s.get(f"{SM}.Alpha", hotkey, signer, netuid, default=0))
    if held < amount:
        raise DispatchError("NotEnoughStakeToWithdraw")
    sn.add_stake(s, netuid, hotkey, signer, -amount)
    credit(s, signer, amount)
    return [event(SM, "StakeRemoved", coldkey=signer, hotkey=hotkey, tao=amount, alpha=amount, netuid=netuid)]


# --- Serving ------------------------------------------------------------------------


@handles(SM, "serve_axon", "serve_axon_tls")
def serve_axon(s: Storage, block: int, signer: str, p: dict) -> list[dict]:
    netuid = int(p["netuid"])
    _require_subnet(s, netuid)
    if sn.uid_of(s, netuid, signer) is None:
        raise DispatchError("HotKeyNotRegisteredInNetwork")
    if int(p["ip_type"]) not in (4, 6):
        raise DispatchError("InvalidIpType")
    previous = s.get(f"{SM}.Axons", netuid, signer)
    limit = int(sn.param(s, netuid, "serving_rate_limit"))
    if previous and limit and block - int(previous["block"]) < limit:
        raise DispatchError("ServingRateLimitExceeded")
    fields = ("version", "ip", "port", "ip_type", "protocol", "placeholder1", "placeholder2")
    s.put(f"{SM}.Axons", netuid, signer, {"block": block, **{f: int(p[f]) for f in fields}})
    return [event(SM, "AxonServed", netuid=netuid, hotkey=signer)]


# --- Weights ------------------------------------------------------------------------


@handles(SM, "set_weights", "set_mechanism_weights")
def set_weights(s: Storage, block: int, signer: str, p: dict) -> list[dict]:
    """``do_set_weights``: the checks in the order a subtensor node makes them."""
    netuid = int(p["netuid"])
    if int(p.get("mecid", 0)) != 0 or not sn.subnet_exists(s, netuid):
        raise DispatchError("MechanismDoesNotExist")
    dests, values = [int(u) for u in p["dests"]], [int(w) for w in p["weights"]]
    if len(dests) != len(values):
        raise DispatchError("WeightVecNotEqualSize")
    uid = sn.uid_of(s, netuid, signer)
    if uid is None:
        raise DispatchError("HotKeyNotRegisteredInSubNet")
    if int(p["version_key"]) < int(sn.param(s, netuid, "weights_version")):
        raise DispatchError("IncorrectWeightVersionKey")
    last = sn.vector(s, netuid, "LastUpdate")
    limit = int(sn.param(s, netuid, "weights_rate_limit"))
    registered = s.get(f"{SM}.BlockAtRegistration", netuid, uid, default=0)
    if last[uid] > registered and block - int(last[uid]) < limit:
        raise DispatchError("SettingWeightsTooFast")
    n = sn.n_neurons(s, netuid)
    if any(d < 0 or d >= n for d in dests):
        raise DispatchError("UidVecContainInvalidOne")
    if len(set(dests)) != len(dests):
        raise DispatchError("DuplicateUids")
    if len(dests) > n:
        raise DispatchError("UidsLengthExceedUidsInSubNet")
    self_only = dests == [uid]
    if not self_only and len(dests) < int(sn.param(s, netuid, "min_allowed_weights")):
        raise DispatchError("WeightVecLengthIsLow")
    if not self_only and not sn.vector(s, netuid, "ValidatorPermit")[uid]:
        raise DispatchError("NeuronNoValidatorPermit")
    total = sum(values)
    limit_u16 = int(sn.param(s, netuid, "max_weights_limit"))
    if not self_only and total and max(values) * U16_MAX > limit_u16 * total + total:
        raise DispatchError("MaxWeightExceeded")
    top = max(values) if values else 0
    row = [[d, round(v * U16_MAX / top)] for d, v in zip(dests, values) if top and v > 0]
    s.put(f"{SM}.Weights", netuid, uid, row)
    last[uid] = block
    sn.set_vector(s, netuid, "LastUpdate", last)
    return [event(SM, "WeightsSet", netuid=netuid, uid=uid)]


# --- Commitments --------------------------------------------------------------------


def _commitment_fields(info: Any) -> list[dict]:
    """Flatten ``info["fields"]`` (the SDK passes ``[[{"RawN": data}]]``) to Data variants."""
    fields = (info or {}).get("fields") if isinstance(info, dict) else None
    if not isinstance(fields, list):
        raise DispatchError("TooManyFieldsInCommitmentInfo", "info must be {'fields': [...]}")
    flat = [f for entry in fields for f in (entry if isinstance(entry, list) else [entry])]
    out = []
    for entry in flat:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise DispatchError("TooManyFieldsInCommitmentInfo", "each field is one Data variant")
        (variant, value), = entry.items()
        if variant.startswith("Raw"):
            data = bytes.fromhex(value[2:]) if isinstance(value, str) else bytes(value)
            if len(data) > RAW_MAX_BYTES:
                raise DispatchError("TooManyFieldsInCommitmentInfo", "Raw data is at most 128 bytes")
            out.append({f"Raw{len(data)}": "0x" + data.hex()})
        elif variant in ("Sha256", "Keccak256", "BlakeTwo256", "ShaThree256"):
            out.append({variant: value if isinstance(value, str) else "0x" + bytes(value).hex()})
        else:
            raise DispatchError("TimelockRevealFailedNotAllowed" if variant == "TimelockRevealFailed"
                                else "CallFiltered", f"{variant} fields are not supported here")
    return out


def _field_bytes(fields: list[dict]) -> int:
    return sum(len(bytes.fromhex(v[2:])) for f in fields for v in f.values())


def commitment_at(s: Storage, netuid: int, hotkey: str, block: int) -> dict | None:
    """``Commitments.CommitmentOf`` of ``hotkey`` as it stood at ``block``, replayed from the extrinsics table.

    The embedded chain keeps only the head's storage; a commitment's past is the one item a read pinned
    to an older block needs (which base was current on a past day), and every change of it is a
    recorded ``set_commitment``.
    """
    rows = s.conn.execute(
        "SELECT block, params FROM extrinsics WHERE module='Commitments' AND function='set_commitment' "
        "AND signer=? AND success=1 AND block<=? ORDER BY block DESC, idx DESC", (hotkey, int(block)))
    for at, params in rows:
        p = decode_value(json.loads(params))
        if int(p.get("netuid", -1)) == int(netuid):
            return {"deposit": 0, "block": int(at), "info": {"fields": _commitment_fields(p.get("info"))}}
    return None


@handles("Commitments", "set_commitment")
def set_commitment(s: Storage, block: int, signer: str, p: dict) -> list[dict]:
    netuid = int(p["netuid"])
    if not sn.subnet_exists(s, netuid) or sn.uid_of(s, netuid, signer) is None:
        raise DispatchError("AccountNotAllowedCommit")
    fields = _commitment_fields(p.get("info"))
    if len(fields) > COMMITMENT_MAX_FIELDS:
        raise DispatchError("TooManyFieldsInCommitmentInfo")
    used = s.get("Commitments.UsedSpaceOf", netuid, signer, default={"last_epoch": -1, "used_space": 0})
    epoch = int(s.get(f"{SM}.SubnetEpochIndex", netuid, default=0))
    spent = int(used["used_space"]) if int(used["last_epoch"]) == epoch else 0
    cost = max(COMMITMENT_MIN_BYTES, _field_bytes(fields))
    if spent + cost > int(sn.param(s, netuid, "commitment_max_space")):
        raise DispatchError("SpaceLimitExceeded")
    s.put("Commitments.UsedSpaceOf", netuid, signer, {"last_epoch": epoch, "used_space": spent + cost})
    s.put("Commitments.CommitmentOf", netuid, signer, {"deposit": 0, "block": block, "info": {"fields": fields}})
    s.put("Commitments.LastCommitment", netuid, signer, block)
    return [event("Commitments", "Commitment", netuid=netuid, who=signer)]


# --- Owner hyperparameters -----------------------------------------------------------

OWNER_SETTABLE = {
    "sudo_set_tempo": "tempo",
    "sudo_set_immunity_period": "immunity_period",
    "sudo_set_min_allowed_weights": "min_allowed_weights",
    "sudo_set_weights_version_key": "weights_version",
    "sudo_set_bonds_moving_average": "bonds_moving_average",
    "sudo_set_serving_rate_limit": "serving_rate_limit",
    "sudo_set_max_allowed_uids": "max_uids",
    "sudo_set_min_burn": "burn_rao",
}


def _owner_set(method: str) -> Handler:
    def apply(s: Storage, block: int, signer: str, p: dict) -> list[dict]:
        netuid = int(p["netuid"])
        _require_subnet(s, netuid)
        if s.get(f"{SM}.SubnetOwner", netuid) != signer:
            raise DispatchError("BadOrigin", "only the subnet owner's coldkey may set this")
        value = next(v for k, v in p.items() if k != "netuid")
        if method == "sudo_set_network_registration_allowed":
            s.put(f"{SM}.NetworkRegistrationAllowed", netuid, bool(value))
        elif method == "sudo_set_commit_reveal_weights_enabled":
            if value:
                raise DispatchError("CallFiltered", "commit-reveal weights are not supported by the embedded chain")
        else:
            s.put(f"{SM}.{sn.PARAM_ITEMS[OWNER_SETTABLE[method]]}", netuid, int(value))
        return [event("AdminUtils", "HyperparameterSet", netuid=netuid, method=method)]

    return apply


for _method in (*OWNER_SETTABLE, "sudo_set_network_registration_allowed", "sudo_set_commit_reveal_weights_enabled"):
    HANDLERS[("AdminUtils", _method)] = _owner_set(_method)
