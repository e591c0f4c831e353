"""Weights on chain (validator.chain_weights): hotkeys to uids, the rate limit, the version key, on the embedded chain."""

import sys
from pathlib import Path

import bittensor as bt
import pytest

from validator.config import WEIGHTS_VERSION
from validator.chain_weights import set_weights, to_uids

from chainkit import NETUID, make_chain


def test_hotkeys_map_to_their_current_uids_and_zeros_drop():
    weights = {"h1": 0.75, "h2": 0.125, "h3": 0.125, "h4": 0.0}
    assert to_uids(weights, {"h1": 4, "h2": 2, "h4": 1}) == pytest.approx({2: 0.125, 4: 0.75})  # h3 left the subnet


@pytest.fixture()
def chain(tmp_path):
    c = make_chain(tmp_path, tempo=10, weights_rate_limit=5, weights_version=WEIGHTS_VERSION)
    for name in ("m1", "m2", "validator"):
        c.register(name)
    c.sub.execute(bt.AddStake(netuid=NETUID, hotkey_ss58=c.wallets["validator"].hotkey.ss58_address,
                              amount_tao=50), c.wallets["validator"]).raise_for_failure()
    c.advance(10)  # one epoch: the validator holds a permit
    return c


def test_set_weights_waits_out_the_rate_limit(chain):
    waited = []

    def wait(blocks):
        waited.append(blocks)
        chain.advance(blocks)

    wallet, uids = chain.wallets["validator"], {chain.uid("m1"): 0.7, chain.uid("m2"): 0.3}
    assert set_weights(chain.sub, wallet, NETUID, uids, version_key=WEIGHTS_VERSION, wait_blocks=wait)
    chain.advance(2)
    assert set_weights(chain.sub, wallet, NETUID, uids, version_key=WEIGHTS_VERSION, wait_blocks=wait,
                       own_uid=chain.uid("validator"))
    assert waited == [3]  # the SDK's error named the 3 blocks left of the 5-block limit
    row = chain.sub.weights.weights(NETUID)[chain.uid("validator")]
    assert row[chain.uid("m1")] == pytest.approx(0.7, abs=1e-3) and row[chain.uid("m2")] == pytest.approx(0.3, abs=1e-3)


def test_version_key_must_reach_the_subnets(chain):
    wallet = chain.wallets["validator"]
    assert not set_weights(chain.sub, wallet, NETUID, {chain.uid("m1"): 1.0}, version_key=WEIGHTS_VERSION - 1,
                           wait_blocks=chain.advance)
    assert set_weights(chain.sub, wallet, NETUID, {chain.uid("m1"): 1.0}, version_key=WEIGHTS_VERSION,
                       wait_blocks=chain.advance)
