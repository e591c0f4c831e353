"""deploy/ecosystem.config.js, as pm2 would load it with node: every app runs a script of this
checkout, and the flags it passes are ones the neuron's own parser accepts."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from test_deploy_autoupdate import au

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node (which pm2 runs on) is not installed")


def load(**settings: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORTEX_")} | settings
    out = subprocess.run(["node", "-e", "console.log(JSON.stringify(require(process.argv[1])))",
                          str(ROOT / "deploy" / "ecosystem.config.js")],
                         env=env, capture_output=True, text=True, check=True).stdout
    return {a["name"]: a for a in json.loads(out)["apps"]}


def neuron_parser(name: str) -> argparse.ArgumentParser:
    if name == "cortex-miner":
        from neurons.miner import build_parser

        return build_parser()
    parser = argparse.ArgumentParser(prog=name, exit_on_error=False)
    if name == "cortex-validator":
        from validator.config import add_args
    else:
        from averager.config import add_args
    add_args(parser)
    return parser


def test_apps_are_the_neurons_and_the_updater():
    apps = load(CORTEX_NETUID="7")
    assert set(apps) == set(au.APPS) | {"cortex-updater"}  # the updater restarts exactly these
    for app in apps.values():
        assert Path(app["script"]).is_file() and Path(app["script"]).is_relative_to(ROOT)
        assert app["cwd"] == str(ROOT)  # where the neurons find .env


@pytest.mark.parametrize("name", au.APPS)
def test_neurons_accept_the_flags_they_are_given(name):
    apps = load(CORTEX_NETUID="7", CORTEX_NETWORK="test", CORTEX_WALLET="w", CORTEX_HOTKEY="h",
                CORTEX_MINER_ARGS="--wandb.off", CORTEX_VALIDATOR_ARGS="--wandb.off --once",
                CORTEX_AVERAGER_ARGS="--wandb.off")
    args = neuron_parser(name).parse_args(apps[name]["args"])
    assert (args.netuid, args.network, args.wallet_name, args.wallet_hotkey) == (7, "test", "w", "h")
    assert args.wandb_off


def test_without_a_netuid_the_neurons_refuse_to_start():
    apps = load()
    for name in au.APPS:
        with pytest.raises((SystemExit, argparse.ArgumentError)):
            neuron_parser(name).parse_args(apps[name]["args"])


def test_the_updater_gets_its_interval():
    updater = load(CORTEX_UPDATE_INTERVAL="120")["cortex-updater"]
    assert Path(updater["script"]) == ROOT / "deploy" / "autoupdate.py"
    assert updater["args"] == ["--interval", "120"]
    assert load(CORTEX_UPDATE_EXTRAS="gpu,deepspeed")["cortex-updater"]["args"][-2:] == ["--extras", "gpu,deepspeed"]
