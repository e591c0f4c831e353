"""Blocks that follow the wall clock, and the SDK's waits on them."""

from __future__ import annotations

import asyncio

import bittensor as bt
import pytest

from cortex.localchain.backend import EmbeddedSubstrate
from cortex.chain.connect import connect
from cortex.localchain.genesis import GenesisConfig, init_chain
from cortex.localchain.subnet import SubnetParams
from cortex.wallets import create_wallet, load_wallet
from cortex.errors import CortexError


def test_blocks_follow_the_clock_and_epochs_run(tmp_path):
    path = tmp_path / "chain.db"
    init_chain(path, GenesisConfig(block_time=0.1, subnet=SubnetParams(tempo=5)))
    sub = connect("embedded", path)
    start = sub.block
    header = sub.wait_for_block(start + 3, timeout=10)
    assert header.number >= start + 3 and sub.block >= start + 3
    event = sub.wait_for_epoch(1, timeout=10)
    assert event.block > event.previous
    assert 0 <= sub.epochs.blocks_until_next_epoch(1) <= 5
    with pytest.raises(bt.ChainError, match="manual-blocks"):
        EmbeddedSubstrate(path).advance(1)


def test_async_client_works_too(tmp_path):
    path = tmp_path / "chain.db"
    init_chain(path, GenesisConfig(manual_blocks=True))

    async def read():
        async with connect("embedded", path) as client:
            return await client.block(), await client.subnets.metagraph(1)

    block, graph = asyncio.run(read())
    assert block == 0 and graph.netuid == 1 and graph.neurons == []


def test_wallet_errors(tmp_path):
    with pytest.raises(CortexError, match="cortex wallet create"):
        load_wallet("nobody", "default", str(tmp_path))
    wallet = create_wallet("w", "h", str(tmp_path))
    assert load_wallet("w", "h", str(tmp_path)).hotkey.ss58_address == wallet.hotkey.ss58_address
    (tmp_path / "w" / "hotkeys" / "h").write_text("{not json")
    with pytest.raises(CortexError, match="cannot read its keys"):
        load_wallet("w", "h", str(tmp_path))
