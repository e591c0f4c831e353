"""No model load in the project runs transformers' Hub kernels unless the operator asks (issue 24).

transformers calls ``kernels.kernelize`` at ``from_pretrained`` and again at ``model.train()``; on
CUDA that downloads kernel code from the Hub. The kernelize calls happen on the CPU too (they find
no CPU kernel and fall back), so a recorder put in their place shows whether a load asked for them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cortex import hub_kernels

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def kernelize_calls(monkeypatch):
    """Every call transformers makes to the ``kernels`` library's ``kernelize``, recorded, not run."""
    import transformers.integrations.hub_kernels as hk

    calls: list = []
    monkeypatch.setattr(hk, "_kernels_kernelize", lambda *a, **k: calls.append(k.get("mode")))
    return calls


@pytest.fixture()
def base(tmp_path) -> Path:
    from cortex.model.random_base import build_base

    return build_base(tmp_path / "base", "llama3", (ROOT / "tests/data/chat_templates/llama3_1.jinja").read_text(),
                      ["a small corpus of words", "and some more words"] * 20)


def test_the_recorder_sees_kernelize_when_hub_kernels_are_on(monkeypatch, kernelize_calls, base):
    """The control: with the switch on, a plain load and train() do call kernelize (so the test below can fail)."""
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv(hub_kernels.ENV, "1")
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model.train()
    assert len(kernelize_calls) == 2


def test_every_project_load_and_train_leaves_kernels_alone(monkeypatch, kernelize_calls, base):
    from cortex.eval.base import load_base
    from cortex.eval.generate import Generator
    from miner.backends import load_adapter_for_training, load_for_training
    from miner.config import TrainConfig

    monkeypatch.delenv(hub_kernels.ENV, raising=False)
    hub_kernels.default_off()  # what importing cortex does at process start
    model, _ = load_base(base)
    model.train()
    generator = Generator.load(base)
    generator.model.train()
    trained, _, lora = load_for_training(TrainConfig(), base, ["q_proj", "v_proj"])
    trained.train()
    from peft import get_peft_model

    peft_model = get_peft_model(trained, lora)
    peft_model.save_pretrained(base.parent / "adapter")
    again, _ = load_adapter_for_training(TrainConfig(), base, base.parent / "adapter")
    again.train()
    assert kernelize_calls == []
    assert hub_kernels.load_kwargs() == {"use_kernels": False}


def test_importing_cortex_turns_them_off_and_an_explicit_opt_in_is_kept():
    env = {k: v for k, v in os.environ.items() if k != hub_kernels.ENV}
    code = "import os, cortex; print(os.environ['USE_HUB_KERNELS'])"
    off = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    assert off.stdout.strip() == "0"
    on = subprocess.run([sys.executable, "-c", code], env={**env, hub_kernels.ENV: "1"}, capture_output=True,
                        text=True, check=True, cwd=ROOT)
    assert on.stdout.strip() == "1"


def test_the_flag_opts_in_and_says_so(monkeypatch, caplog):
    import argparse

    monkeypatch.setenv(hub_kernels.ENV, "0")
    parser = argparse.ArgumentParser()
    hub_kernels.add_flag(parser)
    hub_kernels.apply_flag(parser.parse_args([]))
    assert not hub_kernels.enabled()
    hub_kernels.apply_flag(parser.parse_args(["--hub-kernels"]))
    assert hub_kernels.enabled() and hub_kernels.load_kwargs() == {"use_kernels": True}
    assert "Hub kernels ON" in caplog.text
    assert "Hub" in parser.format_help()
