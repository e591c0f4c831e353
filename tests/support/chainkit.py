"""Helpers for tests on the embedded chain: a fresh chain, funded wallets, registrations."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import bittensor as bt

from cortex.localchain.backend import EmbeddedSubstrate
from cortex.chain.connect import connect
from cortex.localchain.genesis import GenesisConfig, init_chain
from cortex.localchain.pallets import credit
from cortex.localchain.store import ChainFile
from cortex.localchain.subnet import RAO, SubnetParams
from cortex.wallets import create_wallet

NETUID = 1


@dataclass
class LocalChain:
    path: Path
    wallet_path: Path
    sub: bt.Subtensor
    chain: EmbeddedSubstrate
    wallets: dict[str, bt.Wallet] = field(default_factory=dict)

    def wallet(self, name: str, tao: float = 1000.0) -> bt.Wallet:
        wallet = create_wallet(name, "default", str(self.wallet_path))
        with ChainFile(self.path).transaction() as s:
            credit(s, wallet.coldkeypub.ss58_address, int(tao * RAO))
        self.wallets[name] = wallet
        return wallet

    def register(self, name: str, tao: float = 1000.0) -> bt.Wallet:
        wallet = self.wallet(name, tao)
        self.sub.execute(bt.BurnedRegister(netuid=NETUID), wallet).raise_for_failure()
        return wallet

    def uid(self, name: str) -> int:
        hotkey = self.wallets[name].hotkey.ss58_address
        return self.sub.query(bt.storage.SubtensorModule.Uids, [NETUID, hotkey])

    def advance(self, blocks: int) -> int:
        return self.chain.advance(blocks)

    def commit(self, name: str, text: str) -> bt.ExtrinsicResult:
        data = text.encode()
        call = bt.calls.Commitments.set_commitment(NETUID, {"fields": [[{f"Raw{len(data)}": data}]]})
        return self.sub.submit_call(call, self.wallets[name], signer="hotkey")


def make_chain(tmp_path: Path, **params) -> LocalChain:
    """A manual-block chain whose subnet NETUID is owned by the wallet named ``owner``."""
    path = tmp_path / "chain.db"
    owner = create_wallet("owner", "default", str(tmp_path / "wallets"))
    init_chain(path, GenesisConfig(
        manual_blocks=True, netuid=NETUID, subnet=SubnetParams(**params),
        owner_coldkey=owner.coldkeypub.ss58_address, owner_hotkey=owner.hotkey.ss58_address,
    ))
    return LocalChain(path, tmp_path / "wallets", connect("embedded", path), EmbeddedSubstrate(path))
