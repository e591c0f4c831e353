"""Publishing model commitments through the SDK and reading them back strictly."""

from __future__ import annotations

import pytest
from chainkit import NETUID, make_chain

from cortex.chain.commitments import CommitFailed, publish, read_all
from cortex.protocol.commitment import ModelCommitment

CONTENT = "ab" * 32


def commitment_for(wallet, repo="miner/adapter"):
    return ModelCommitment.for_content("cortex-tiny", repo, "c" * 40, CONTENT, wallet.hotkey.ss58_address)


def test_publish_is_idempotent_and_reads_back(tmp_path):
    c = make_chain(tmp_path, tempo=10)
    miner = c.register("miner")
    block = publish(c.sub, miner, NETUID, commitment_for(miner))
    c.advance(3)
    assert publish(c.sub, miner, NETUID, commitment_for(miner)) == block  # nothing sent twice
    with c.chain.chain.read() as s:
        sent = s.conn.execute("SELECT COUNT(*) FROM extrinsics WHERE function='set_commitment'").fetchone()[0]
    assert sent == 1
    [record] = read_all(c.sub, NETUID)
    assert record.commitment.verify(CONTENT, miner.hotkey.ss58_address)
    assert record.uid == 0 and record.block == block


def test_malformed_and_copied_commitments(tmp_path):
    c = make_chain(tmp_path, tempo=10)
    honest, copier, junk = c.register("honest"), c.register("copier"), c.register("junk")
    original = commitment_for(honest)
    publish(c.sub, honest, NETUID, original)
    c.advance(1)
    assert c.commit("copier", original.encode()).success  # the same string, another hotkey
    assert c.commit("junk", "repo:rev:hash:competition").success
    records = {r.hotkey: r for r in read_all(c.sub, NETUID)}
    assert records[junk.hotkey.ss58_address].commitment is None
    assert records[junk.hotkey.ss58_address].error  # the reason it does not decode
    copied = records[copier.hotkey.ss58_address].commitment
    assert not copied.verify(CONTENT, copier.hotkey.ss58_address)
    assert records[honest.hotkey.ss58_address].block < records[copier.hotkey.ss58_address].block


def test_publish_from_unregistered_hotkey_fails_clearly(tmp_path):
    c = make_chain(tmp_path)
    stranger = c.wallet("stranger")
    with pytest.raises(CommitFailed, match="AccountNotAllowedCommit"):
        publish(c.sub, stranger, NETUID, commitment_for(stranger))
