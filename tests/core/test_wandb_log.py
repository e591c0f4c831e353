"""cortex.wandb_log: offline by default under the neuron's folder, never fatal, one logger for every role."""

from __future__ import annotations

import os

import pytest

from cortex.errors import CortexError
from cortex.wandb_log import WandbConfig, WandbLog


@pytest.mark.slow
def test_logs_offline_under_the_folder_and_a_failure_turns_it_off(tmp_path, monkeypatch):
    for key in ("WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "WANDB_DISABLED"):
        monkeypatch.delenv(key, raising=False)
    logger = WandbLog(WandbConfig(), folder=tmp_path, project="cortex-test", name="validator-5Fhotkey",
                      config={"netuid": 1})
    logger.log({"round": 1, "sync_block": 20, "c/unearned": 0.25},
               tables={"c/models": (["uid", "key", "weight"], [[1, "a/b@r", 1.0]])})
    assert logger.run is not None and logger.run.project == "cortex-test"
    logger.finish({"round": 1, "ignored": {"not": "plain"}})
    assert any(p.name.startswith("offline-run-") for p in (tmp_path / "wandb").iterdir())
    broken = WandbLog(WandbConfig(), folder=tmp_path, project="cortex-test", name="broken")
    broken.log({"round": 2}, tables={"t": (["a"], 5)})  # not rows: a warning, not an exception
    assert broken.off and broken.run is None
    broken.log({"round": 3})  # off: nothing happens


def test_off_logs_nothing_and_tells_trainers_so(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_DISABLED", raising=False)
    logger = WandbLog(WandbConfig(enabled=False), folder=tmp_path, project="p", name="n")
    logger.log({"round": 1})
    logger.finish({"x": 1})
    assert logger.run is None and not (tmp_path / "wandb").exists()
    assert logger.report_to() == "none" and os.environ["WANDB_DISABLED"] == "true"


def test_report_to_sets_the_trainers_environment_without_overriding_the_users(tmp_path, monkeypatch):
    for key in ("WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "WANDB_ENTITY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_DISABLED", "true")
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    logger = WandbLog(WandbConfig(project="flagged", entity="team"), folder=tmp_path, project="cortex-miner", name="n")
    assert logger.report_to() == "wandb"
    assert "WANDB_DISABLED" not in os.environ and os.environ["WANDB_MODE"] == "offline"
    assert os.environ["WANDB_DIR"] == str(tmp_path) and (tmp_path / "wandb").is_dir()
    assert os.environ["WANDB_PROJECT"] == "mine" and os.environ["WANDB_ENTITY"] == "team"
    assert logger.project == "flagged"  # --wandb.project over the role's default


def test_mode_is_checked():
    with pytest.raises(CortexError, match="--wandb.mode must be offline or online"):
        WandbConfig(mode="sometimes")
