"""The leaderboard: its snapshot against the chain's own reads, the app, escaping, the export and the CLI."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
from chainkit import NETUID, make_chain
from fastapi.testclient import TestClient
from leaderboard_fixtures import ALT, COMP, HOSTILE, build_world
from markupsafe import escape

from cortex.localchain.cli import chain_status
from cortex.cli import main
from cortex.leaderboard.app import create_app
from cortex.leaderboard.charts import Series, line_chart, sparkline
from cortex.leaderboard.data import _rank_key, snapshot
from cortex.leaderboard.export import export


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("leaderboard"))


@pytest.fixture(scope="module")
def snap(world):
    return snapshot(world.chain.sub, NETUID, [world.state])


def rows(snap, competition):
    return {r["uid"]: r for c in snap["competitions"] if c["id"] == competition for r in c["rows"]}


def test_rows_carry_the_chains_incentive_and_emission_and_skip_base_pointers(world, snap):
    status = {n["uid"]: n for n in chain_status(str(world.chain.path), NETUID)["neurons"]}
    tiny, alt = rows(snap, COMP), rows(snap, ALT)
    assert set(tiny) == {world.uid(n) for n in ("m0", "m1", "m2", "junk")}
    assert set(alt) == {world.uid("m3")}
    assert world.uid("averager") not in snap["miners"] and str(world.uid("averager")) not in snap["miners"]
    for uid, row in {**tiny, **alt}.items():
        assert row["incentive"] == pytest.approx(status[uid]["incentive"])
        assert row["emission"] == pytest.approx(status[uid]["emission"])
        assert row["hotkey"] == status[uid]["hotkey"]
    assert any(r["incentive"] > 0 for r in tiny.values())
    ranked = sorted(tiny.values(), key=lambda r: r["rank"])
    assert [r["rank"] for r in ranked] == [1, 2, 3, 4]
    assert [r["incentive"] for r in ranked] == sorted((r["incentive"] for r in ranked), reverse=True)
    m0 = tiny[world.uid("m0")]
    assert (m0["repo"], m0["revision"], m0["url"]) == ("m0/adapter", "c" * 40, None)  # embedded: no Hub link
    assert m0["commit_block"] == world.chain.sub.identity.commitment(NETUID, world.hotkey("m0")).block
    assert json.loads(json.dumps(snap, allow_nan=False)) == snap


def test_validator_tables_are_combined_by_stake(world, snap):
    status = {n["hotkey"]: n for n in chain_status(str(world.chain.path), NETUID)["neurons"]}
    s0, s1 = status[world.hotkey("v0")]["stake"], status[world.hotkey("v1")]["stake"]
    m0, m1 = rows(snap, COMP)[world.uid("m0")], rows(snap, COMP)[world.uid("m1")]
    assert m0["advantage"] == pytest.approx((0.75 * s0 + 0.25 * s1) / (s0 + s1))
    assert m0["ci_low"] == pytest.approx((0.65 * s0 + 0.15 * s1) / (s0 + s1)) and m0["days"] == 5
    assert m1["mean_reward"] == pytest.approx((0.10 * s0 + 0.40 * s1) / (s0 + s1))
    assert [(h["round"], h["sync_block"]) for h in m0["history"]] == [(1, 10), (2, 20)]
    assert m0["history"][0]["advantage"] == 0.5  # v0's table alone
    detail = snap["miners"][str(world.uid("m0"))]
    assert detail["scored_by"] == world.hotkey("v0")  # the higher-stake validator's row
    assert detail["metrics"]["depth"] == 0.25 and detail["metrics"]["accuracy"] == pytest.approx(0.8)
    # the forged table (an unregistered hotkey, no stake) is listed but weighs nothing
    assert [v["validator"] for v in detail["per_validator"]] == [world.hotkey("v0"), world.hotkey("v1"), HOSTILE]
    assert detail["rank"] == m0["rank"] and detail["competition"] == COMP


def test_validators_and_base_history(world, snap):
    status = {n["uid"]: n for n in chain_status(str(world.chain.path), NETUID)["neurons"]}
    graph = world.chain.sub.subnets.metagraph(NETUID)
    assert [v["uid"] for v in snap["validators"]] == [world.uid("v0"), world.uid("v1")]  # by stake
    for v in snap["validators"]:
        assert v["validator_trust"] == pytest.approx(status[v["uid"]]["validator_trust"])
        assert v["stake"] == pytest.approx(status[v["uid"]]["stake"])
        assert v["last_update"] == graph.neurons[v["uid"]].last_update > 0
        assert v["last_scores_block"] == 20
    assert [(r["round"], r["status"]) for r in snap["base_history"]] == [
        (1, "published"), (2, "rejected"), (3, "skipped")]
    assert snap["base_history"][0]["gate"]["passed"] is True and snap["base_history"][2]["gate"] is None
    assert (snap["netuid"], snap["network"], snap["block"]) == (NETUID, "embedded", world.chain.sub.block)


def test_malformed_files_are_skipped_with_a_warning_once(world, caplog, tmp_path):
    state = shutil.copytree(world.state, tmp_path / "state")  # files the module's snapshot has not warned about
    with caplog.at_level(logging.WARNING, logger="cortex.leaderboard.files"):
        assert snapshot(world.chain.sub, NETUID, [state, tmp_path / "missing"])["base_history"]
        first = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping")]
        snapshot(world.chain.sub, NETUID, [state])
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping")]
    assert skipped == first and len(skipped) == 6 and all("/bad/" in m for m in skipped)
    assert any("round-000011.json" in m and "unknown key 'models'" in m for m in skipped)  # the old win-rate shape
    assert any("finite" in m for m in skipped) and any("exploded" in m for m in skipped)
    assert any("does not exist" in r.getMessage() for r in caplog.records)


def test_real_networks_link_the_hub(world):
    sub = world.chain.sub
    label = sub.network
    sub.network = "finney"
    try:
        linked = snapshot(sub, NETUID, [world.state])
    finally:
        sub.network = label
    row = rows(linked, COMP)[world.uid("m0")]
    assert linked["network"] == "finney"
    assert row["url"] == f"https://huggingface.co/m0/adapter/tree/{'c' * 40}"
    assert rows(linked, COMP)[world.uid("junk")]["url"] is None  # a repo named only by a file is never linked


def test_api_pages_and_escaping(world, snap):
    client = TestClient(create_app(lambda: snap))
    assert client.get("/api/v1/leaderboard").json() == snap
    assert client.get("/healthz").json() == {"status": "ok", "block": snap["block"], "netuid": NETUID}
    index = client.get("/")
    assert index.status_code == 200 and "script-src" not in index.headers["content-security-policy"]
    junk, m0 = client.get(f"/miner/{world.uid('junk')}"), client.get(f"/miner/{world.uid('m0')}")
    assert HOSTILE in {v["validator"] for v in snap["miners"][str(world.uid("m0"))]["per_validator"]}
    for page in (index.text, junk.text, m0.text):
        assert HOSTILE not in page and "<script" not in page and "<img" not in page
        assert escape(HOSTILE) in page
    assert f'href="/miner/{world.uid("m0")}"' in index.text and 'id="base-history"' in index.text
    assert client.get("/miner/999").status_code == 404


def test_the_snapshot_is_cached_and_a_failed_read_serves_the_last_one(snap):
    def flaky(calls: list):
        def load():
            calls.append(1)
            if len(calls) > 1:
                raise OSError("node unreachable")
            return snap
        return load

    calls: list = []
    cached = TestClient(create_app(flaky(calls), ttl=60))
    for _ in range(3):
        assert cached.get("/healthz").status_code == 200
    assert len(calls) == 1
    calls = []
    stale = TestClient(create_app(flaky(calls), ttl=0))
    for _ in range(2):
        assert stale.get("/api/v1/leaderboard").json() == snap  # the second read failed: the first is served
    assert len(calls) == 2
    down = TestClient(create_app(flaky([1])))
    response = down.get("/")
    assert response.status_code == 503 and "node unreachable" in response.text


def test_export_and_cli(world, snap, tmp_path, capsys):
    files = export(snap, tmp_path / "site")
    assert {f.name for f in files} == {"index.html", "leaderboard.json", *(f"miner-{u}.html" for u in snap["miners"])}
    assert json.loads((tmp_path / "site" / "leaderboard.json").read_text()) == snap
    index = (tmp_path / "site" / "index.html").read_text()
    assert f'href="miner-{world.uid("m0")}.html"' in index and HOSTILE not in index
    out = tmp_path / "cli-site"
    assert main(["leaderboard", "--chain.path", str(world.chain.path), "--state", str(world.state),
                 "--export", str(out)]) == 0
    exported = json.loads((out / "leaderboard.json").read_text())
    assert {r["uid"] for c in exported["competitions"] for r in c["rows"]} == set(map(int, snap["miners"]))
    assert main(["leaderboard", "--chain.path", str(tmp_path / "nope.db"), "--export", str(out)]) == 2
    assert "cortex chain init" in capsys.readouterr().err
    assert main(["leaderboard", "--chain.path", str(world.chain.path), "--netuid", "7", "--export", str(out)]) == 2
    assert "subnet 7 does not exist" in capsys.readouterr().err


def test_ties_in_incentive_go_to_the_better_score_then_the_earlier_commitment():
    def row(uid, ci_low, mean_reward, block, incentive=0.0):
        return {"uid": uid, "incentive": incentive, "ci_low": ci_low, "mean_reward": mean_reward,
                "commit_block": block}

    rows = [row(1, None, None, 1), row(2, 0.5, -0.5, 1), row(3, 0.5, 0.0, 9), row(4, 0.5, 0.0, 5),
            row(5, 0.0, -1.0, 1, incentive=0.1)]
    assert [r["uid"] for r in sorted(rows, key=_rank_key)] == [5, 4, 3, 2, 1]


def test_a_fresh_subnet_renders_empty(tmp_path):
    fresh = snapshot(make_chain(tmp_path).sub, NETUID, [])
    assert (fresh["competitions"], fresh["base_history"], fresh["miners"]) == ([], [], {})
    page = TestClient(create_app(lambda: fresh)).get("/").text
    assert "No competition has a committed or scored model yet" in page and "No averager round" in page


def test_charts_leave_gaps_and_escape_labels():
    svg = line_chart(["<b>", "r2", "r3"], [Series("a<i>", [0.1, None, 0.3])], chart_id="c", title="t&",
                     markers=["published", None, "rejected"])
    assert svg.count("<circle") == 2 and svg.count(" M") + svg.count('d="M') == 2  # two pieces: no line over the gap
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "a&lt;i&gt;" in svg and "t&amp;" in svg
    assert 'class="marker rejected"' in svg
    assert sparkline([0.5]) == "" and "polyline" in sparkline([0.1, None, 0.4])
    ticks = line_chart(["r1", "r2"], [Series("s", [-0.6, 0.2])], chart_id="t", title="t")
    assert ">0<" in ticks and "e-1" not in ticks  # round tick labels, no float error
    with pytest.raises(ValueError, match="one value"):
        line_chart(["r1"], [Series("s", [1.0, 2.0])], chart_id="t", title="t")
