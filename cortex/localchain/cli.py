"""`cortex chain …`: set up and inspect the embedded chain.

Only set-up goes around the SDK (genesis and the faucet, as a dev chain's
genesis config and sudo would); everything a neuron does afterwards goes
through ``bittensor`` exactly as on a real chain, and `status` reads through it too.
"""

from __future__ import annotations

import argparse
import json

import bittensor as bt
from bittensor_core import ss58_decode

from cortex.localchain.backend import EmbeddedSubstrate
from cortex.chain.connect import connect
from cortex.localchain.genesis import GenesisConfig, init_chain
from cortex.localchain.pallets import credit
from cortex.localchain.store import ChainFile
from cortex.localchain.subnet import RAO, SubnetParams
from cortex.errors import CortexError

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


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="chain_command", metavar="ACTION", required=True)

    init = sub.add_parser("init", help="create a chain file with funded dev accounts and a subnet")
    init.add_argument("--path", required=True)
    init.add_argument("--netuid", type=int, default=1)
    init.add_argument("--block-time", type=float, default=12.0, help="seconds per block")
    init.add_argument("--manual-blocks", action="store_true", help="advance blocks only by hand")
    init.add_argument("--owner-coldkey", help="subnet owner coldkey ss58 (default //Alice)")
    init.add_argument("--owner-hotkey", help="subnet owner hotkey ss58 (default: the coldkey)")
    defaults = SubnetParams()
    for flag, field in _PARAM_FLAGS.items():
        init.add_argument(f"--{flag.replace('_', '-')}", type=int, default=getattr(defaults, field))
    init.set_defaults(func=_init)

    fund = sub.add_parser("fund", help="credit TAO to an address (the dev chain's faucet)")
    fund.add_argument("--path", required=True)
    fund.add_argument("--ss58", required=True)
    fund.add_argument("--tao", type=float, required=True)
    fund.set_defaults(func=_fund)

    advance = sub.add_parser("advance", help="produce blocks by hand (--manual-blocks chains)")
    advance.add_argument("--path", required=True)
    advance.add_argument("--blocks", type=int, default=1)
    advance.set_defaults(func=_advance)

    status = sub.add_parser("status", help="block, epoch and every neuron of a subnet")
    status.add_argument("--path", required=True)
    status.add_argument("--netuid", type=int, default=1)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_status)


def _init(args: argparse.Namespace) -> int:
    params = SubnetParams(**{field: getattr(args, flag) for flag, field in _PARAM_FLAGS.items()})
    config = GenesisConfig(
        block_time=args.block_time, manual_blocks=args.manual_blocks, netuid=args.netuid,
        owner_coldkey=args.owner_coldkey, owner_hotkey=args.owner_hotkey, subnet=params,
    )
    init_chain(args.path, config)
    mode = "manual blocks" if args.manual_blocks else f"{args.block_time:g}s blocks"
    print(f"chain at {args.path}: subnet {args.netuid}, tempo {args.tempo}, {mode}")
    return 0


def _fund(args: argparse.Namespace) -> int:
    if args.tao <= 0:
        raise CortexError("--tao must be positive")
    try:
        ss58_decode(args.ss58)
    except Exception:  # noqa: BLE001
        raise CortexError(f"{args.ss58!r} is not an SS58 address") from None
    chain = ChainFile(args.path)
    with chain.transaction() as s:
        credit(s, args.ss58, int(args.tao * RAO))
    print(f"funded {args.ss58} with {args.tao:g} TAO")
    return 0


def _advance(args: argparse.Namespace) -> int:
    if args.blocks < 1:
        raise CortexError("--blocks must be at least 1")
    try:
        head = EmbeddedSubstrate(args.path).advance(args.blocks)
    except bt.ChainError as exc:
        raise CortexError(str(exc)) from None
    print(f"block {head}")
    return 0


def chain_status(path: str, netuid: int) -> dict:
    """Block, epoch timing and every neuron, read through the SDK."""
    sub = connect("embedded", path)
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
        })
    return {
        "block": graph.block, "netuid": netuid, "tempo": graph.tempo, "last_step": graph.last_step,
        "blocks_until_next_epoch": sub.epochs.blocks_until_next_epoch(netuid), "neurons": neurons,
    }


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
    return 0
