"""`cortex chain …`: set up and inspect the embedded chain.

Only set-up goes around the SDK (genesis and the faucet, as a dev chain's
genesis config and sudo would); everything a neuron does afterwards goes
through ``bittensor`` exactly as on a real chain, and `status` reads through it too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import bittensor as bt
from bittensor_core import ss58_decode

from cortex.localchain.backend import EmbeddedSubstrate
from cortex.chain.connect import connect
from cortex.localchain.genesis import GenesisConfig, init_chain
from cortex.localchain.pallets import credit
from cortex.localchain.store import ChainFile
from cortex.localchain.subnet import RAO, SubnetParams
from cortex.cliargs import int_at_least, positive_float
from cortex.errors import CortexError
from cortex.wallets import OFFLINE_PATH

_PARAM_FLAGS = {  # flag -> SubnetParams field
    "tempo": "tempo",
    "weights_rate_limit": "weights_rate_limit",
    "weights_version": "weights_version",
    "kappa": "kappa",
    "bonds_moving_average": "bonds_moving_average",
    "max_validators": "max_validators",
    "immunity_period": "immunity_period",
    "min_allowed_weights": "min_allowed_weights",
    "max_uids": "max_uids",
    "activity_cutoff": "activity_cutoff",
}


_PARAM_BOUNDS = {  # flag -> (lowest, highest) value the chain accepts
    "tempo": (1, None),
    "weights_rate_limit": (0, None),
    "weights_version": (0, None),
    "kappa": (0, 65535),
    "bonds_moving_average": (0, 1_000_000),
    "max_validators": (1, None),
    "immunity_period": (0, None),
    "min_allowed_weights": (0, None),
    "max_uids": (1, None),
    "activity_cutoff": (1, None),
}
NETUID = int_at_least(1, 65535)  # netuid 0 is the root network, never a subnet of one's own


def _chain_path(p: argparse.ArgumentParser) -> None:
    """``--chain.path``, as every neuron and the leaderboard spell it; ``--path`` kept as an alias."""
    p.add_argument("--chain.path", "--path", dest="path", required=True, metavar="FILE",
                   help="the embedded chain's file")


def _wallet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wallet.name", dest="wallet_name", required=True, help="the wallet (its coldkey pays)")
    p.add_argument("--wallet.hotkey", dest="wallet_hotkey", default="default", help="the hotkey to register")
    p.add_argument("--wallet.path", dest="wallet_path", default=OFFLINE_PATH, help="folder of wallets")


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="chain_command", metavar="ACTION", required=True)

    init = sub.add_parser("init", help="create a chain file with funded dev accounts and a subnet")
    _chain_path(init)
    init.add_argument("--netuid", type=NETUID, default=1, help="the subnet to create")
    init.add_argument("--block-time", type=positive_float, default=12.0, help="seconds per block")
    init.add_argument("--manual-blocks", action="store_true", help="advance blocks only by hand")
    init.add_argument("--owner-coldkey", help="subnet owner coldkey ss58 (default //Alice)")
    init.add_argument("--owner-hotkey", help="subnet owner hotkey ss58 (default: the coldkey)")
    init.add_argument("--owner-wallet", default=None, metavar="NAME",
                      help="the subnet owner is this wallet's coldkey and default hotkey (instead of the ss58 flags)")
    init.add_argument("--wallet.path", dest="wallet_path", default=OFFLINE_PATH, help="folder of --owner-wallet")
    defaults = SubnetParams()
    for flag, field in _PARAM_FLAGS.items():
        init.add_argument(f"--{flag.replace('_', '-')}", type=int_at_least(*_PARAM_BOUNDS[flag]),
                          default=getattr(defaults, field), help=f"subnet hyperparameter {field}")
    init.set_defaults(func=_init)

    fund = sub.add_parser("fund", help="credit TAO to an address (the dev chain's faucet)")
    _chain_path(fund)
    to = fund.add_mutually_exclusive_group(required=True)
    to.add_argument("--ss58", help="the coldkey address to credit")
    to.add_argument("--wallet.name", dest="wallet_name", help="credit this wallet's coldkey (with --wallet.path)")
    fund.add_argument("--wallet.path", dest="wallet_path", default=OFFLINE_PATH, help="folder of wallets")
    fund.add_argument("--tao", type=positive_float, required=True, help="how much")
    fund.set_defaults(func=_fund)

    reg = sub.add_parser("register", help="register a hotkey on the subnet (burned registration), optionally staking")
    _chain_path(reg)
    reg.add_argument("--netuid", type=NETUID, default=1, help="the subnet")
    _wallet(reg)
    reg.add_argument("--stake", type=positive_float, default=None, metavar="TAO",
                     help="also stake this much TAO from the coldkey to the hotkey")
    reg.set_defaults(func=_register)

    advance = sub.add_parser("advance", help="produce blocks by hand (--manual-blocks chains)")
    _chain_path(advance)
    advance.add_argument("--blocks", type=int_at_least(1), default=1, help="how many blocks")
    advance.set_defaults(func=_advance)

    status = sub.add_parser("status", help="block, epoch, every neuron of a subnet, and balances")
    _chain_path(status)
    status.add_argument("--netuid", type=NETUID, default=1, help="the subnet")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=_status)


def _init(args: argparse.Namespace) -> int:
    params = SubnetParams(**{field: getattr(args, flag) for flag, field in _PARAM_FLAGS.items()})
    coldkey, hotkey = args.owner_coldkey, args.owner_hotkey
    if args.owner_wallet:
        if coldkey or hotkey:
            raise CortexError("--owner-wallet names the owner's keys: leave out --owner-coldkey/--owner-hotkey")
        from cortex.wallets import load_wallet

        owner = load_wallet(args.owner_wallet, "default", args.wallet_path)
        coldkey, hotkey = owner.coldkeypub.ss58_address, owner.hotkey.ss58_address
    config = GenesisConfig(
        block_time=args.block_time, manual_blocks=args.manual_blocks, netuid=args.netuid,
        owner_coldkey=coldkey, owner_hotkey=hotkey, subnet=params,
    )
    init_chain(args.path, config)
    mode = "manual blocks" if args.manual_blocks else f"{args.block_time:g}s blocks"
    print(f"chain at {args.path}: subnet {args.netuid}, tempo {args.tempo}, {mode}")
    return 0


def _open(path: str) -> bt.Subtensor:
    """The SDK client on the chain file at ``path``; a missing file is a one-line error."""
    if not Path(path).is_file():
        raise CortexError(f"no chain file at {path}: create one with `cortex chain init --chain.path {path}`")
    return connect("embedded", path)


def _fund(args: argparse.Namespace) -> int:
    _open(args.path)  # a missing file is refused, never created empty by the faucet
    ss58 = args.ss58
    if ss58 is None:
        from cortex.wallets import load_wallet

        ss58 = load_wallet(args.wallet_name, "default", args.wallet_path).coldkeypub.ss58_address
    try:
        ss58_decode(ss58)
    except Exception:  # noqa: BLE001
        raise CortexError(f"{ss58!r} is not an SS58 address") from None
    chain = ChainFile(args.path)
    with chain.transaction() as s:
        credit(s, ss58, int(args.tao * RAO))
    print(f"funded {ss58} with {args.tao:g} TAO")
    return 0


def _register(args: argparse.Namespace) -> int:
    """Burned registration and the optional stake, as intents through the SDK (what `btcli subnet
    register` and `btcli stake add` send to a real chain, which they cannot reach here)."""
    from cortex.wallets import load_wallet

    sub = _open(args.path)
    if sub.subnets.metagraph(args.netuid) is None:
        raise CortexError(f"subnet {args.netuid} does not exist on {args.path}")
    wallet = load_wallet(args.wallet_name, args.wallet_hotkey, args.wallet_path)
    hotkey = wallet.hotkey.ss58_address
    uid = sub.query(bt.storage.SubtensorModule.Uids, [args.netuid, hotkey])
    if uid is None:
        result = sub.execute(bt.BurnedRegister(netuid=args.netuid), wallet)
        if not result.success:
            raise CortexError(f"registering {args.wallet_name}/{args.wallet_hotkey} failed: {result.message}")
        uid = sub.query(bt.storage.SubtensorModule.Uids, [args.netuid, hotkey])
        print(f"registered {args.wallet_name}/{args.wallet_hotkey} ({hotkey}) on subnet {args.netuid}: uid {uid}")
    else:
        print(f"{args.wallet_name}/{args.wallet_hotkey} ({hotkey}) is already registered on subnet {args.netuid}: "
              f"uid {uid}")
    if args.stake is not None:
        result = sub.execute(bt.AddStake(netuid=args.netuid, hotkey_ss58=hotkey, amount_tao=args.stake), wallet)
        if not result.success:
            raise CortexError(f"staking {args.stake:g} TAO to {hotkey} failed: {result.message}")
        print(f"staked {args.stake:g} TAO to uid {uid}")
    return 0


def _advance(args: argparse.Namespace) -> int:
    _open(args.path)
    try:
        head = EmbeddedSubstrate(args.path).advance(args.blocks)
    except bt.ChainError as exc:
        raise CortexError(str(exc)) from None
    print(f"block {head}")
    return 0


def chain_status(path: str, netuid: int) -> dict:
    """Block, epoch timing and every neuron, read through the SDK."""
    sub = _open(path)
    graph = sub.subnets.metagraph(netuid)
    if graph is None:
        raise CortexError(f"subnet {netuid} does not exist on {path}")
    vtrust = sub.query(bt.storage.SubtensorModule.ValidatorTrust, [netuid]) or []
    neurons = []
    for n in graph.neurons:
        neurons.append({
            "uid": n.uid, "hotkey": n.hotkey, "coldkey": n.coldkey,
            "stake": n.total_stake.rao / RAO, "incentive": n.incentive, "dividends": n.dividends,
            "validator_trust": (vtrust[n.uid] / 65535) if n.uid < len(vtrust) else 0.0,
            "emission": n.emission.rao / RAO, "validator_permit": n.validator_permit,
            "commitment": n.commitment.value if n.commitment else None,
            "last_update": n.last_update, "weights": _weights(sub, netuid, n.uid),
        })
    return {
        "block": graph.block, "netuid": netuid, "tempo": graph.tempo, "last_step": graph.last_step,
        "blocks_until_next_epoch": sub.epochs.blocks_until_next_epoch(netuid), "neurons": neurons,
        "balances": balances(sub, neurons),
    }


def _weights(sub: bt.Subtensor, netuid: int, uid: int) -> dict[int, float]:
    """The weights this uid last set, by target uid (each as a share of u16's maximum); {} when none."""
    row = sub.query(bt.storage.SubtensorModule.Weights, [netuid, uid]) or []
    return {int(target): int(value) / 65535 for target, value in row}


def balances(sub: bt.Subtensor, neurons: list[dict]) -> list[dict]:
    """Per coldkey of the subnet's neurons: its free TAO and the stake on each of its hotkeys."""
    free = sub.balances.get_many(sorted({n["coldkey"] for n in neurons}))
    out = []
    for coldkey in sorted(free):
        hotkeys = {n["hotkey"]: n["stake"] for n in neurons if n["coldkey"] == coldkey}
        out.append({"coldkey": coldkey, "free": free[coldkey].rao / RAO, "staked": sum(hotkeys.values()),
                    "hotkeys": hotkeys})
    return out


def _status(args: argparse.Namespace) -> int:
    status = chain_status(args.path, args.netuid)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"block {status['block']}  netuid {status['netuid']}  tempo {status['tempo']}  "
          f"next epoch in {status['blocks_until_next_epoch']} blocks")
    print(f"{'uid':>4} {'hotkey':<14} {'stake':>10} {'incent':>7} {'divs':>7} {'vtrust':>7} "
          f"{'emission':>10}  commitment")
    for n in status["neurons"]:
        print(f"{n['uid']:>4} {n['hotkey'][:12] + '…':<14} {n['stake']:>10.3f} {n['incentive']:>7.4f} "
              f"{n['dividends']:>7.4f} {n['validator_trust']:>7.4f} {n['emission']:>10.4f}  "
              f"{(n['commitment'] or '-')[:60]}")
    for n in status["neurons"]:
        if n["weights"]:
            print(f"uid {n['uid']} set weights at block {n['last_update']}: "
                  + ", ".join(f"uid {t} {w:.3f}" for t, w in sorted(n["weights"].items())))
    print(f"{'coldkey':<14} {'free TAO':>12} {'staked':>10}  hotkeys")
    for b in status["balances"]:
        print(f"{b['coldkey'][:12] + '…':<14} {b['free']:>12.3f} {b['staked']:>10.3f}  "
              + ", ".join(f"{h[:8]}… {v:.3f}" for h, v in b["hotkeys"].items()))
    return 0
