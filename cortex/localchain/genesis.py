"""Creating an embedded chain: genesis, development accounts, the first subnet."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import bittensor_core

from cortex.localchain import subnet as sn
from cortex.localchain.extrinsic import new_shield_key
from cortex.localchain.pallets import credit
from cortex.localchain.store import ChainFile, ChainFileError
from cortex.localchain.subnet import RAO, SubnetParams

DEV_ACCOUNTS = ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie")
DEV_BALANCE_RAO = 1_000_000 * RAO


def dev_address(name: str) -> str:
    """SS58 address of a development account (``//Alice``…), as on a subtensor dev chain."""
    return bittensor_core.Keypair.create_from_uri(f"//{name}").ss58_address


@dataclass(frozen=True)
class GenesisConfig:
    block_time: float = 12.0  # seconds per block (wall-clock mode)
    manual_blocks: bool = False  # blocks advance only with `cortex chain advance`
    netuid: int | None = 1  # the subnet to create at genesis (None: none)
    owner_coldkey: str | None = None  # default: //Alice
    owner_hotkey: str | None = None  # default: the owner coldkey
    subnet: SubnetParams = SubnetParams()


def init_chain(path: str | Path, config: GenesisConfig = GenesisConfig()) -> ChainFile:
    """Write a new chain file at ``path`` (refusing to overwrite an existing chain)."""
    path = Path(path)
    if config.block_time <= 0:
        raise ChainFileError("--block-time must be positive")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".init")
    if path.exists():
        raise ChainFileError(f"{path} already exists; remove it or choose another --path")
    tmp.unlink(missing_ok=True)
    chain = ChainFile(tmp, create=True)
    public, secret = new_shield_key()
    with chain.transaction() as s:
        s.set_meta("genesis_hash", "0x" + secrets.token_hex(32))
        s.set_meta("genesis_time", time.time())
        s.set_meta("block_time", float(config.block_time))
        s.set_meta("manual_blocks", bool(config.manual_blocks))
        s.set_meta("head", 0)
        s.set_meta("shield_public", public.hex())
        s.set_meta("shield_secret", secret.hex())
        s.put("MevShield.NextKey", "0x" + public.hex())
        for name in DEV_ACCOUNTS:
            credit(s, dev_address(name), DEV_BALANCE_RAO)
        if config.netuid is not None:
            owner = config.owner_coldkey or dev_address("Alice")
            sn.create_subnet(s, config.netuid, owner, config.owner_hotkey or owner, config.subnet, 0)
    chain.close()
    tmp.replace(path)  # the chain appears whole or not at all
    return ChainFile(path)
