"""A small subnet with score tables and averager rounds on disk, for the leaderboard's tests.

On an embedded chain: three miners commit adapters for ``cortex-tiny`` and one for ``cortex-alt``,
``junk`` commits a string that does not decode, the averager commits a base pointer, and two
validators (300 and 100 TAO) set weights and pass an epoch so that incentive and emission exist.
Under ``state/``: both validators' score tables for two rounds (the second validator's in a
nested folder), the averager's round records, a row whose repo and reason are hostile HTML, a
table from an unregistered "validator" whose hotkey is hostile HTML, and malformed files that
the leaderboard must skip.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import bittensor as bt
from chainkit import NETUID, LocalChain, make_chain

from cortex.chain.commitments import publish
from cortex.protocol.commitment import ModelCommitment

COMP, ALT = "cortex-tiny", "cortex-alt"
MINERS = {"m0": COMP, "m1": COMP, "m2": COMP, "m3": ALT}
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
SYNC_BLOCKS = (10, 20)
# win rate, mean reward per (validator, round index, miner)
SCORES = {
    ("v0", 0): {"m0": (0.5, 0.10), "m1": (0.25, 0.05), "m2": (0.0, -0.2), "junk": (0.0, -1.0)},
    ("v0", 1): {"m0": (0.75, 0.30), "m1": (0.5, 0.10), "m2": (0.25, -0.1), "junk": (0.0, -1.0)},
    ("v1", 1): {"m0": (0.25, 0.10), "m1": (0.75, 0.40), "m2": (0.25, -0.1)},
}


@dataclass
class World:
    chain: LocalChain
    state: Path

    def hotkey(self, name: str) -> str:
        return self.chain.wallets[name].hotkey.ss58_address

    def uid(self, name: str) -> int:
        return self.chain.uid(name)


def _model(world: World, name: str, win_rate: float, reward: float, competition: str) -> dict:
    hostile = name == "junk"
    return {"uid": world.uid(name), "hotkey": world.hotkey(name), "repo": HOSTILE if hostile else f"{name}/adapter",
            "revision": "c" * 40, "commit_block": 3, "reason": HOSTILE if hostile else None, "detail": None,
            "win_rate": win_rate, "mean_reward": reward, "mean_advantage": reward / 2, "softmax": win_rate,
            "smoothed": win_rate, "weight": win_rate / 2,
            "metrics": {"accuracy": 0.5 + reward, "depth": 0.25, "penalties": -0.01, "hit_rate": 0.6,
                        "brier": 0.24, "ece": 0.05, "parse_rate": 1.0, "answered": 12}}


def _table(world: World, validator: str, index: int) -> dict:
    scores = SCORES[(validator, index)]
    models = {cid: [_model(world, n, w, r, MINERS.get(n, COMP)) for n, (w, r) in scores.items()
                    if MINERS.get(n, COMP) == cid] for cid in (COMP, ALT)}
    return {"round": index + 1, "sync_block": SYNC_BLOCKS[index], "validator": world.hotkey(validator),
            "round_blocks": 10, "version_key": 1,
            "competitions": {cid: {"competition": cid, "base": "cortex/tiny-llama@aaaaaaaaaaaa", "models": ms,
                                   "base_model": {"win_rate": 0.0, "mean_reward": -1.0, "metrics": {}},
                                   "softmax": {}} for cid, ms in models.items()}}


def _rounds(world: World) -> list[dict]:
    inputs = [{"uid": world.uid(n), "hotkey": world.hotkey(n), "repo": f"{n}/adapter", "revision": "c" * 40,
               "commit_block": 3, "weight": w, "score": s, "decision": "merged", "reason": None}
              for n, w, s in (("m0", 0.6, 0.3), ("m1", 0.4, 0.1))]
    gate = {"merged_reward": 0.35, "base_reward": -0.2, "best_single_reward": 0.3, "best_single": "m0/adapter",
            "margin": 0.0, "passed": True}
    return [
        {"round": 1, "block": 12, "competition": COMP, "status": "published", "reason": None, "inputs": inputs,
         "method": "dora-exact", "gate": gate, "parent": "a" * 40, "published": "b" * 40, "pointer_block": 13},
        {"round": 2, "block": 22, "competition": COMP, "status": "rejected", "reason": "the merge did not beat m0",
         "inputs": inputs, "method": "dora-exact", "gate": {**gate, "merged_reward": 0.2, "base_reward": 0.35,
                                                            "passed": False},
         "parent": "b" * 40, "published": None, "pointer_block": None},
        {"round": 3, "block": 32, "competition": COMP, "status": "skipped", "reason": "no eligible inputs",
         "inputs": [], "method": None, "gate": None, "parent": "b" * 40, "published": None, "pointer_block": None},
    ]


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))


def build_world(root: Path) -> World:
    c = make_chain(root, tempo=10, weights_rate_limit=1)
    for name in ("v0", "v1", *MINERS, "junk", "averager"):
        c.register(name)
    for name, tao in (("v0", 300), ("v1", 100)):
        hotkey = c.wallets[name].hotkey.ss58_address
        c.sub.execute(bt.AddStake(netuid=NETUID, hotkey_ss58=hotkey, amount_tao=tao), c.wallets[name]).raise_for_failure()
    for name, comp in MINERS.items():
        hotkey = c.wallets[name].hotkey.ss58_address
        publish(c.sub, c.wallets[name], NETUID, ModelCommitment.for_content(comp, f"{name}/adapter", "c" * 40,
                                                                          "ab" * 32, hotkey))
    assert c.commit("junk", "not a commitment").success
    averager = c.wallets["averager"].hotkey.ss58_address
    publish(c.sub, c.wallets["averager"], NETUID, ModelCommitment.for_content(
        COMP, "cortex/base", "b" * 40, "ab" * 32, averager, kind="base"))
    world = World(c, root / "state")
    uids = [world.uid(n) for n in ("m0", "m1", "m2", "m3")]
    c.advance(10)  # an epoch: the staked validators get their permits
    for name, prefs in (("v0", [4, 3, 1, 2]), ("v1", [2, 4, 1, 1])):
        c.sub.execute(bt.SetWeights(netuid=NETUID, uids=uids, weights=[float(p) for p in prefs]),
                      c.wallets[name]).raise_for_failure()
    c.advance(25)

    for (validator, index) in SCORES:
        folder = world.state / validator if validator == "v0" else world.state / "nested" / validator
        table = _table(world, validator, index)
        _write(folder / "scores" / f"round-{index + 1:06d}.json", table)
        _write(folder / "scores" / "latest.json", table)
    for record in _rounds(world):
        _write(world.state / "averager" / "rounds" / f"round-{record['round']:06d}.json", record)
    forged = {**_table(world, "v1", 1), "validator": HOSTILE}  # no stake: it moves no average
    forged["competitions"][COMP]["models"][0].update(win_rate=1.0, mean_reward=1.0)
    _write(world.state / "forged" / "scores" / "round-000002.json", forged)
    bad = _table(world, "v1", 1)
    bad["competitions"][COMP]["models"][0]["win_rate"] = float("nan")
    _write(world.state / "bad" / "scores" / "round-000009.json", json.dumps(bad))  # NaN: not finite
    _write(world.state / "bad" / "scores" / "round-000010.json", '{"round": 1, "competitions": ')  # truncated
    _write(world.state / "bad" / "scores" / "latest.json", "[1, 2, 3]")
    _write(world.state / "bad" / "rounds" / "round-000004.json", {"round": 4, "status": "exploded"})
    _write(world.state / "bad" / "rounds" / "round-000005.json", "[" * 100000)  # too deep to parse
    return world
