"""Weights: scores per competition, smoothing direction, shares, and setting them on the embedded chain."""

import sys
from pathlib import Path

import bittensor as bt
import numpy as np
import pytest

from cortex.protocol.competition import EpsilonSchedule
from validator.config import WEIGHTS_VERSION
from validator.scoring import BASE, Entry
from validator.weights import combine, competition_weights, score_entries, set_weights, to_uids

sys.path.insert(0, str(Path(__file__).parent))
from chainkit import NETUID, make_chain

EPS = EpsilonSchedule(start=0.01, end=0.001, decay_blocks=100)


def test_scores_win_rates_rewards_and_group_advantages():
    entries = [Entry(BASE, None, np.array([-1.0, -1.0])), Entry("a", 1, np.array([1.0, 0.5])),
               Entry("b", 2, np.array([0.0, 0.5])), Entry("c", 3, None, "pickle")]
    s = score_entries(entries, EPS, block=10)
    assert s["a"]["win_rate"] > s["b"]["win_rate"] > s[BASE]["win_rate"] == 0.0
    assert s["c"] == {"win_rate": 0.0, "mean_reward": 0.0, "mean_advantage": 0.0}
    assert s["a"]["mean_reward"] == 0.75 and s[BASE]["mean_reward"] == -1.0
    assert s["a"]["mean_advantage"] > s["b"]["mean_advantage"] > 0 > s[BASE]["mean_advantage"]
    assert sum(v["mean_advantage"] for v in s.values()) == pytest.approx(0.0, abs=1e-9)  # centred per prompt
    weights = competition_weights({k: v["win_rate"] for k, v in s.items()}, temperature=0.1)
    assert BASE not in weights and weights["c"] == 0.0 and weights["a"] > weights["b"]


def test_smoothing_alpha_is_the_new_rounds_weight_and_unregistered_hotkeys_drop():
    previous = {"comp": {"old": 1.0, "gone": 1.0}}
    current = {"comp": {"new": 1.0, "old": 0.0}}
    fast, w_fast = combine(current, previous, alpha=0.9, shares={"comp": 1.0}, registered={"old", "new"})
    slow, _ = combine(current, previous, alpha=0.1, shares={"comp": 1.0}, registered={"old", "new"})
    assert fast["comp"] == pytest.approx({"new": 0.9, "old": 0.1})  # alpha near 1: follow the new round
    assert slow["comp"] == pytest.approx({"new": 0.1, "old": 0.9})  # alpha near 0: keep the past
    assert "gone" not in fast["comp"] and sum(w_fast.values()) == pytest.approx(1.0)
    only_now, _ = combine(current, previous, alpha=1.0, shares={"comp": 1.0}, registered={"old", "new"})
    assert only_now["comp"] == {"new": 1.0}


def test_competitions_split_by_reward_share_and_map_to_uids():
    _, weights = combine({"a": {"h1": 1.0}, "b": {"h2": 1.0, "h3": 1.0}}, {}, 1.0, {"a": 0.75, "b": 0.25},
                         {"h1", "h2", "h3"})
    assert weights == pytest.approx({"h1": 0.75, "h2": 0.125, "h3": 0.125})
    assert to_uids(weights, {"h1": 4, "h2": 2}) == pytest.approx({2: 0.125, 4: 0.75})  # h3 left the subnet


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
