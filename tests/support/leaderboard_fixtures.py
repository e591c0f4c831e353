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
from dataclasses import dataclass, replace
from pathlib import Path

import bittensor as bt
from chainkit import NETUID, LocalChain, make_chain

from cortex.chain.commitments import publish
from cortex.protocol.commitment import ModelCommitment
from cortex.protocol.rounds import AveragerRound, GateResult, RoundInput
from cortex.protocol.scores import CompetitionScores, CompetitionTable, ModelMetrics, ModelSkill, ScoreTable

COMP, ALT = "cortex-tiny", "cortex-alt"
MINERS = {"m0": COMP, "m1": COMP, "m2": COMP, "m3": ALT}
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
SYNC_BLOCKS = (10, 20)
# advantage over the base, mean reward per (validator, round index, miner)
SCORES = {
    ("v0", 0): {"m0": (0.5, 0.10), "m1": (0.25, 0.05), "m2": (0.0, -0.2), "junk": (0.0, -1.0)},
    ("v0", 1): {"m0": (0.75, 0.30), "m1": (0.5, 0.10), "m2": (0.25, -0.1), "junk": (0.0, -1.0)},
    ("v1", 1): {"m0": (0.25, 0.10), "m1": (0.75, 0.40), "m2": (0.25, -0.1)},
}
BASE = "cortex/tiny-llama@" + "a" * 64


@dataclass
class World:
    chain: LocalChain
    state: Path

    def hotkey(self, name: str) -> str:
        return self.chain.wallets[name].hotkey.ss58_address

    def uid(self, name: str) -> int:
        return self.chain.uid(name)


def _model(world: World, name: str, advantage: float) -> ModelSkill:
    hostile = name == "junk"
    key = f"{HOSTILE if hostile else name + '/adapter'}@{'c' * 40}"
    earned = advantage > 0.1 and not hostile
    return ModelSkill(key, world.hotkey(name), world.uid(name), 3, advantage, advantage - 0.1, advantage + 0.1, 5, 10,
                      earned, "earned" if earned else (HOSTILE if hostile else "not_above_min_improvement"),
                      advantage / 2)


def _metrics(reward: float) -> ModelMetrics:
    return ModelMetrics(answered=12, resolved=10, failed=0, mean_reward=reward, parse_rate=1.0, accuracy=0.5 + reward,
                        depth=0.25, penalties=-0.01, new_tokens=1200)


def _table(world: World, validator: str, index: int) -> ScoreTable:
    scores = SCORES[(validator, index)]
    tables = {}
    for cid in (COMP, ALT):
        mine = {n: v for n, v in scores.items() if MINERS.get(n, COMP) == cid}
        skills = [_model(world, n, a) for n, (a, _) in mine.items()]
        metrics = {m.key: _metrics(r) for m, (_, r) in zip(skills, mine.values())}
        metrics[BASE] = _metrics(-1.0)
        result = CompetitionScores(cid, "2024-01-20", "2024-01-11", BASE, skills,
                                   {m.hotkey: m.weight for m in skills if m.earned})
        tables[cid] = CompetitionTable(cid, BASE, ["2024-01-11", "2024-01-20"], 10, 80, result, metrics)
    return ScoreTable(round=index + 1, sync_block=SYNC_BLOCKS[index], round_blocks=10,
                      validator=world.hotkey(validator), version_key=1, competitions=tables)


def _rounds(world: World) -> list[AveragerRound]:
    inputs = [RoundInput(uid=world.uid(n), hotkey=world.hotkey(n), repo=f"{n}/adapter", revision="c" * 40,
                         commit_block=3, incentive=w, weight=w, score=s)
              for n, w, s in (("m0", 0.6, 0.3), ("m1", 0.4, 0.1))]
    gate = GateResult(merged_reward=0.35, base_reward=-0.2, best_single_reward=0.3, best_single="m0/adapter",
                      margin=0.0, passed=True, reason="merged beats both", prompts=8)
    return [
        AveragerRound(round=1, block=12, competition=COMP, status="published", reason="gate passed", inputs=inputs,
                      gate=gate, parent="a" * 40, published="b" * 40, pointer_block=13),
        AveragerRound(round=2, block=22, competition=COMP, status="rejected", reason="the merge did not beat m0",
                      inputs=inputs, gate=replace(gate, merged_reward=0.2, base_reward=0.35, passed=False),
                      parent="b" * 40),
        AveragerRound(round=3, block=32, competition=COMP, status="skipped", reason="no eligible inputs",
                      parent="b" * 40),
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
        table.write(folder / "scores" / f"round-{index + 1:06d}.json")
        table.write(folder / "scores" / "latest.json")
    for record in _rounds(world):
        record.write(world.state / "averager" / "rounds" / f"round-{record.round:06d}.json")
    forged = _table(world, "v1", 1).to_json()
    forged["validator"] = HOSTILE  # no stake: it moves no average
    forged["competitions"][COMP]["scores"]["models"][0].update(advantage=1.0, ci_low=0.9)
    _write(world.state / "forged" / "scores" / "round-000002.json", forged)
    bad = _table(world, "v1", 1).to_json()
    bad["competitions"][COMP]["scores"]["models"][0]["advantage"] = float("nan")
    _write(world.state / "bad" / "scores" / "round-000009.json", json.dumps(bad))  # NaN: not finite
    old_shape = {"round": 3, "sync_block": 30, "validator": "x", "competitions": {COMP: {"models": []}}}
    _write(world.state / "bad" / "scores" / "round-000011.json", old_shape)  # not a ScoreTable record
    _write(world.state / "bad" / "scores" / "round-000010.json", '{"round": 1, "competitions": ')  # truncated
    _write(world.state / "bad" / "scores" / "latest.json", "[1, 2, 3]")
    _write(world.state / "bad" / "rounds" / "round-000004.json", {"round": 4, "status": "exploded"})
    _write(world.state / "bad" / "rounds" / "round-000005.json", "[" * 100000)  # too deep to parse
    return world
