"""Errors as a real chain gives them, through the SDK, and bad chain files."""

from __future__ import annotations

import sqlite3

import bittensor as bt
import pytest
from bittensor import ErrorCode
from chainkit import NETUID, make_chain

from cortex.localchain.backend import EmbeddedSubstrate
from cortex.chain.connect import connect
from cortex.localchain.store import ChainFile, ChainFileError
from cortex.cli import main
from cortex.errors import CortexError


@pytest.fixture()
def chain(tmp_path):
    c = make_chain(tmp_path, tempo=10, weights_rate_limit=5, weights_version=3)
    c.register("miner")
    c.register("validator")
    c.sub.execute(bt.AddStake(netuid=NETUID, hotkey_ss58=c.wallets["validator"].hotkey.ss58_address,
                              amount_tao=50), c.wallets["validator"]).raise_for_failure()
    c.advance(10)
    return c


def set_weights(c, name, version_key=3, uids=(0,)):
    return c.sub.execute(bt.SetWeights(netuid=NETUID, uids=list(uids), weights=[1.0], version_key=version_key),
                         c.wallets[name])


def test_stale_version_key(chain):
    result = set_weights(chain, "validator", version_key=2)
    assert not result.success
    assert result.error.name == "IncorrectWeightVersionKey"
    assert result.error.code == ErrorCode.INVALID_ARGUMENT


def test_weights_inside_rate_limit(chain):
    assert set_weights(chain, "validator").success
    chain.advance(2)
    with pytest.raises(bt.ChainError) as caught:  # the SDK's preflight, as against a node
        set_weights(chain, "validator")
    assert caught.value.code == ErrorCode.RATE_LIMITED
    call = bt.calls.SubtensorModule.set_mechanism_weights(NETUID, 0, [0], [65535], 3)
    raw = chain.sub.submit_call(call, chain.wallets["validator"], signer="hotkey")  # no preflight
    assert raw.error.name == "SettingWeightsTooFast" and raw.error.code == ErrorCode.RATE_LIMITED
    chain.advance(3)
    assert set_weights(chain, "validator").success


def test_weights_without_permit(chain):
    assert set_weights(chain, "miner").success  # a self-weight needs no permit
    chain.advance(5)
    result = set_weights(chain, "miner", uids=[1])
    assert result.error.name == "NeuronNoValidatorPermit"


def test_weights_from_unregistered_hotkey(chain):
    stranger = chain.wallet("stranger")
    with pytest.raises(bt.ChainError) as caught:
        chain.sub.execute(bt.SetWeights(netuid=NETUID, uids=[0], weights=[1.0], version_key=3), stranger)
    assert caught.value.code == ErrorCode.NOT_REGISTERED
    call = bt.calls.SubtensorModule.set_mechanism_weights(NETUID, 0, [0], [65535], 3)
    raw = chain.sub.submit_call(call, stranger, signer="hotkey")
    assert raw.error.name == "HotKeyNotRegisteredInSubNet"


def test_commitment_rules(chain):
    assert chain.commit("miner", "x" * 128).success
    with pytest.raises(bt.ChainError, match="at most 128 bytes"):
        chain.commit("miner", "x" * 129)
    stranger = chain.wallet("stranger")
    chain.wallets["stranger"] = stranger
    result = chain.commit("stranger", "hello")
    assert result.error.name == "AccountNotAllowedCommit"
    assert result.error.code == ErrorCode.NOT_AUTHORIZED
    # space: every commitment uses at least 100 bytes of a 3100-byte budget per epoch
    results = [chain.commit("miner", f"c{k}") for k in range(40)]
    assert any(r.error and r.error.name == "SpaceLimitExceeded" for r in results)
    chain.advance(10)  # a new epoch resets the budget
    assert chain.commit("miner", "again").success
    assert chain.sub.identity.commitment(NETUID, chain.wallets["miner"].hotkey.ss58_address).data == "again"


def test_owner_only_hyperparameters(chain):
    result = chain.sub.execute(bt.SetHyperparameter(netuid=NETUID, name="immunity_period", value=42),
                               chain.wallets["miner"])
    assert result.error.name == "BadOrigin"
    owner = chain.wallets.get("owner") or chain.wallet("owner")
    result = chain.sub.execute(bt.SetHyperparameter(netuid=NETUID, name="immunity_period", value=42), owner)
    assert result.success, result.message
    assert chain.sub.query(bt.storage.SubtensorModule.ImmunityPeriod, [NETUID]) == 42


def test_registration_and_staking_errors(chain):
    again = chain.sub.execute(bt.BurnedRegister(netuid=NETUID), chain.wallets["miner"])
    assert again.error.name == "HotKeyAlreadyRegisteredInSubNet"
    poor = chain.wallet("poor", tao=0.5)
    assert chain.sub.execute(bt.BurnedRegister(netuid=NETUID), poor).error.name == "NotEnoughBalanceToStake"
    hot = chain.wallets["validator"].hotkey.ss58_address
    unstake = chain.sub.execute(bt.RemoveStake(netuid=NETUID, hotkey_ss58=hot, amount_alpha=10_000),
                                chain.wallets["validator"])
    assert unstake.error.name == "NotEnoughStakeToWithdraw"
    assert chain.sub.execute(bt.RemoveStake(netuid=NETUID, hotkey_ss58=hot, amount_alpha=10),
                             chain.wallets["validator"]).success
    served = chain.sub.execute(bt.ServeAxon(netuid=NETUID, ip="127.0.0.1", port=8091), chain.wallets["miner"])
    assert served.success
    assert chain.sub.subnets.metagraph(NETUID).neurons[chain.uid("miner")].axon == "127.0.0.1:8091"


def test_epoch_timing(chain):
    assert chain.sub.epochs.blocks_until_next_epoch(NETUID) == 10
    chain.advance(4)
    assert chain.sub.block == 14
    assert chain.sub.epochs.blocks_until_next_epoch(NETUID) == 6


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(ChainFileError, match="cortex chain init"):
        connect("embedded", tmp_path / "missing.db")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ChainFileError):
        EmbeddedSubstrate(junk)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(ChainFileError, match="not a Cortex chain file"):
        ChainFile(other)
    with pytest.raises(CortexError, match="unknown network"):
        connect("mainnet-please", None)
    assert main(["chain", "status", "--path", str(junk)]) == 2


def test_newer_schema_is_refused(tmp_path):
    c = make_chain(tmp_path)
    conn = sqlite3.connect(c.path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(ChainFileError, match="schema v99"):
        ChainFile(c.path)
