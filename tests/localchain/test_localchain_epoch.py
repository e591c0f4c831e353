"""The embedded chain through the SDK, checked against Yuma Consensus done by hand (docs/chain.md).

Subnet owner, four miners and two validators register through the SDK, the
validators stake, miners commit adapter pointers, both validators set weights,
a tempo passes, and the metagraph's incentive, dividends and validator trust
must match a plain-Python Yuma computation on the same inputs.
"""

from __future__ import annotations

import bittensor as bt
import pytest
from chainkit import NETUID, make_chain

U16 = 65535


def hand_yuma(stake, weights, kappa=0.5):
    """Classic Yuma for one epoch with no previous bonds, in plain loops.

    stake: {uid: stake} of permitted validators; weights: {uid: {uid: w}} rows as set.
    Returns incentive, dividends and validator trust per uid (dicts).
    """
    total = sum(stake.values())
    s = {i: v / total for i, v in stake.items()}
    uids = sorted({j for row in weights.values() for j in row} | set(stake))
    w = {}
    for i in stake:
        row = {j: v for j, v in weights.get(i, {}).items() if j != i}
        row_total = sum(row.values())
        w[i] = {j: (row.get(j, 0.0) / row_total if row_total else 0.0) for j in uids}
    consensus = {}
    for j in uids:  # stake-weighted kappa-median: smallest value whose support passes 1 - kappa
        values = sorted((w[i][j], s[i]) for i in stake)
        support_above, chosen = 0.0, 0.0
        for value, weight in sorted(values, reverse=True):
            support_above += weight
            if support_above > kappa:
                chosen = value
                break
        consensus[j] = chosen
    clipped = {i: {j: min(w[i][j], consensus[j]) for j in uids} for i in stake}
    rank = {j: sum(s[i] * clipped[i][j] for i in stake) for j in uids}
    rank_total = sum(rank.values())
    incentive = {j: rank[j] / rank_total for j in uids}
    vtrust = {i: sum(clipped[i].values()) for i in stake}
    # bonds from zero: the EMA is alpha * delta; normalising each column cancels alpha
    column = {j: sum(clipped[i][j] * s[i] for i in stake) for j in uids}
    bonds = {i: {j: (clipped[i][j] * s[i] / column[j] if column[j] else 0.0) for j in uids} for i in stake}
    raw = {i: sum(bonds[i][j] * incentive[j] for j in uids) for i in stake}
    raw_total = sum(raw.values())
    dividends = {i: raw[i] / raw_total for i in stake}
    return incentive, dividends, vtrust


@pytest.mark.slow
def test_walkthrough_matches_hand_yuma(tmp_path):
    c = make_chain(tmp_path, tempo=10, weights_rate_limit=2, weights_version=7, max_validators=8)
    owner = c.register("owner")
    miners = [c.register(f"miner{k}") for k in range(4)]
    validators = [c.register(f"validator{k}") for k in range(2)]
    assert [c.uid(n) for n in ("owner", "miner0", "miner3", "validator1")] == [0, 1, 4, 6]
    for wallet, tao in zip(validators, (300, 100)):
        c.sub.execute(bt.AddStake(netuid=NETUID, hotkey_ss58=wallet.hotkey.ss58_address,
                                  amount_tao=tao), wallet).raise_for_failure()
    for k in range(4):
        assert c.commit(f"miner{k}", f"1:cortex-tiny:miner{k}/adapter:{k:040x}").success
    c.advance(10)  # first epoch: validator permits go to the staked hotkeys
    graph = c.sub.subnets.metagraph(NETUID)
    # the owner's cut is paid after the epoch, so its permit comes one epoch later
    assert [n.validator_permit for n in graph.neurons] == [False] * 5 + [True, True]

    rows = {5: {1: 0.4, 2: 0.3, 3: 0.2, 4: 0.1}, 6: {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4}}
    for wallet, uid in zip(validators, (5, 6)):
        result = c.sub.execute(bt.SetWeights(netuid=NETUID, uids=list(rows[uid]),
                                             weights=list(rows[uid].values()), version_key=7), wallet)
        assert result.success, result.message
    stakes = {n.uid: n.total_stake.rao for n in c.sub.subnets.metagraph(NETUID).neurons}
    c.advance(10)  # second epoch: consensus over the weights

    graph = c.sub.subnets.metagraph(NETUID)
    stored = {uid: {dest: value / U16 for dest, value in row.items()} for uid, row in rows.items()}
    incentive, dividends, vtrust = hand_yuma({5: stakes[5], 6: stakes[6]}, stored)
    chain_vtrust = c.sub.query(bt.storage.SubtensorModule.ValidatorTrust, [NETUID])
    tol = 2 / U16
    for uid in range(1, 5):
        assert graph.neurons[uid].incentive == pytest.approx(incentive[uid], abs=tol)
    for uid in (5, 6):
        assert graph.neurons[uid].dividends == pytest.approx(dividends[uid], abs=tol)
        assert chain_vtrust[uid] / U16 == pytest.approx(vtrust[uid], abs=tol)
    assert vtrust[5] == pytest.approx(1.0) and vtrust[6] < 0.8  # the minority validator is clipped
    assert graph.neurons[1].incentive > graph.neurons[4].incentive
    assert sum(n.emission.rao for n in graph.neurons) > 0

    commitments = c.sub.subnets.commitments(NETUID)
    assert sorted(cm.value for cm in commitments.values())[0].startswith("1:cortex-tiny:miner0/")
    assert c.sub.identity.commitment(NETUID, miners[2].hotkey.ss58_address).data.endswith(f"{2:040x}")
    weights = c.sub.weights.weights(NETUID)
    assert weights[5][1] == pytest.approx(0.4, abs=1e-4)
    assert set(c.sub.weights.bonds(NETUID)) == {5, 6}
    assert graph.owner_hotkey == owner.hotkey.ss58_address
