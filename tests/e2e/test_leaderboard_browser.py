"""The leaderboard in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

The app is served by uvicorn on a free port of 127.0.0.1; the test checks that the leaderboard
table has a row per uid of the run and that the base-history chart drew its SVG, and saves
screenshots under the test's folder and as ``test-outputs/leaderboard*.png`` in the repository.

Without a Chromium the test skips, saying how to install one, unless ``CI`` is set: then it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from chainkit import NETUID
from leaderboard_fixtures import build_world

from cortex.leaderboard.app import create_app
from cortex.leaderboard.data import snapshot
from cortex.leaderboard.render import num

pytestmark = pytest.mark.slow
OUTPUTS = Path(__file__).resolve().parents[2] / "test-outputs"
INSTALL = "apt-get install -y --no-install-recommends chromium (Debian), or set CORTEX_CHROMIUM to a Chromium binary"


@pytest.fixture
def executable() -> str:
    """The Chromium to drive; skips (fails under CI) when it or playwright is missing."""
    found = os.environ.get("CORTEX_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    message = None if found else f"no Chromium found: {INSTALL}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        message = "playwright is not installed: pip install -e '.[test]'"
    if message:
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(load):
    """The app over ``load`` in a uvicorn thread on a free port; returns (url, stop)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(load), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return f"http://127.0.0.1:{port}", stop


def uids_of(snap: dict) -> dict[str, list[int]]:
    return {c["id"]: [r["uid"] for r in c["rows"]] for c in snap["competitions"]}


@pytest.fixture
def served(tmp_path):
    """The app over a fixture subnet; yields (base url, expected uids per competition, snapshot)."""
    world = build_world(tmp_path / "run")
    snap = snapshot(world.chain.sub, NETUID, [world.state])
    url, stop = serve(lambda: snapshot(world.chain.sub, NETUID, [world.state]))
    yield url, uids_of(snap), snap
    stop()


@pytest.fixture
def served_localnet(localnet_run):
    """The app over a real `cortex localnet` run, as `cortex leaderboard --chain.path … --state WORKDIR`."""
    from cortex.chain.connect import connect

    sub = connect("embedded", localnet_run.work / "chain.db")
    snap = snapshot(sub, 1, [localnet_run.work])
    url, stop = serve(lambda: snapshot(sub, 1, [localnet_run.work]))
    yield url, uids_of(snap), snap
    stop()


def test_a_localnet_run_renders_with_its_uids_and_numbers(executable, served_localnet, localnet_run, tmp_path):
    from playwright.sync_api import sync_playwright

    url, uids, snap = served_localnet
    summary = json.loads((localnet_run.work / "summary.json").read_text())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            assert page.goto(url).status == 200
            (competition, expected), = uids.items()
            assert len(expected) == 2  # the run's two miners
            table = page.locator(f'table.leaderboard[data-competition="{competition}"]')
            assert [int(t) for t in table.locator("tr.miner td:nth-child(2)").all_inner_texts()] == expected
            for miner in summary["miners"]:  # the page shows the numbers the localnet summary printed
                uid = miner["uid"]
                row = table.locator(f'tr.miner[data-uid="{uid}"]').inner_text()
                assert num(miner["advantage"]) in row and num(miner["incentive"]) in row, (row, miner)
            assert page.locator("svg#base-history").is_visible()
            assert page.locator("svg#base-history rect.marker").count() == len(snap["base_history"]) == 2
            page.screenshot(path=str(tmp_path / "leaderboard-localnet.png"), full_page=True)
        finally:
            browser.close()
    OUTPUTS.mkdir(exist_ok=True)
    shutil.copy(tmp_path / "leaderboard-localnet.png", OUTPUTS / "leaderboard-localnet.png")


def test_the_leaderboard_renders_in_chromium(executable, served, tmp_path):
    from playwright.sync_api import sync_playwright

    url, uids, snap = served
    OUTPUTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            assert page.goto(url).status == 200
            for competition, expected in uids.items():
                table = page.locator(f'table.leaderboard[data-competition="{competition}"]')
                shown = [int(t) for t in table.locator("tr.miner td:nth-child(2)").all_inner_texts()]
                assert shown == expected and expected
            chart = page.locator("svg#base-history")
            assert chart.is_visible()
            assert chart.locator("path.series").count() == 3
            drawn = [r["gate"][k] for r in snap["base_history"] if r["gate"]
                     for k in ("merged_reward", "base_reward", "best_single_reward")]
            assert chart.locator("circle.point").count() == sum(v is not None for v in drawn) > 0
            assert chart.locator("rect.marker").count() == len(snap["base_history"])
            assert chart.bounding_box()["height"] > 100
            page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)

            scored = next(int(uid) for uid, m in snap["miners"].items() if m["metrics"])
            page.click(f'tr.miner[data-uid="{scored}"] a')
            page.wait_for_url(f"**/miner/{scored}")
            assert page.locator("table.metrics td").count() > 0
            assert page.locator("svg#miner-history path.series").count() == 2
            page.screenshot(path=str(tmp_path / "leaderboard-miner.png"), full_page=True)
            assert not errors, errors  # the CSP blocked nothing the page needs
        finally:
            browser.close()
    for name in ("leaderboard.png", "leaderboard-miner.png"):
        assert (tmp_path / name).stat().st_size > 10_000
        shutil.copy(tmp_path / name, OUTPUTS / name)


def test_the_base_progress_chart_of_a_localnet_run(executable, served_localnet, localnet_run, tmp_path):
    """The base on the averager's fixed benchmark, genesis first: one chart per metric with a point per base,
    the numbers the localnet summary printed, and a screenshot of the charts."""
    from playwright.sync_api import sync_playwright

    url, _, snap = served_localnet
    summary = json.loads((localnet_run.work / "summary.json").read_text())
    (points,) = snap["base_progress"].values()
    assert summary["base_progress"] == points
    assert points[0]["label"] == "genesis" and [p["round"] for p in points[1:]] == [1, 2]
    assert len({p["questions"] for p in points}) == 1 and points[0]["questions"] == 6
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            assert page.goto(url).status == 200
            charts = page.locator("#base-progress")
            assert charts.is_visible()
            for key in ("mean_reward", "parse_rate", "brier", "brier_skill"):
                chart = charts.locator(f"svg#base-progress-{key}")
                assert chart.is_visible() and chart.bounding_box()["height"] > 100
                assert chart.locator("circle.point").count() == sum(p[key] is not None for p in points)
                assert chart.locator("rect.marker").count() == len(points)
                assert chart.locator("text.tick").first.text_content()  # an axis a reader can read
            assert charts.locator("svg text").filter(has_text="genesis").count() == 4
            rows = page.locator("table.progress-table tr").all_inner_texts()[1:]
            assert [r.split()[0] for r in rows] == [p["label"] for p in points]
            for row, point in zip(rows, points):
                assert f"{point['mean_reward']:.3f}" in row and f"{point['parse_rate']:.2f}" in row
            charts.screenshot(path=str(tmp_path / "leaderboard-base-progress.png"))
        finally:
            browser.close()
    assert (tmp_path / "leaderboard-base-progress.png").stat().st_size > 5_000
    OUTPUTS.mkdir(exist_ok=True)
    shutil.copy(tmp_path / "leaderboard-base-progress.png", OUTPUTS / "leaderboard-base-progress.png")
