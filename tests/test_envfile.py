"""``.env``: the neurons and the `cortex` command read tokens from it; the environment wins."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values

from cortex.envfile import load_env_file
from cortex.errors import run_command

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("CX_TEST_TOKEN", "CX_TEST_KEPT", "CX_TEST_EMPTY")


def test_env_file_fills_only_unset_nonempty_variables(tmp_path, monkeypatch):
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)  # restored (unset) after the test
    monkeypatch.setenv("CX_TEST_KEPT", "from the environment")
    (tmp_path / ".env").write_text('CX_TEST_TOKEN=secret  # a comment\nCX_TEST_KEPT=from the file\nCX_TEST_EMPTY=\n')
    monkeypatch.chdir(tmp_path)
    seen = {}

    def body() -> int:
        seen.update({n: os.environ.get(n) for n in NAMES})
        return 0

    assert run_command("test", body) == 0
    assert seen == {"CX_TEST_TOKEN": "secret", "CX_TEST_KEPT": "from the environment", "CX_TEST_EMPTY": None}


def test_no_env_file_is_fine(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_env_file() == []


def test_the_template_names_the_tokens_and_sets_none():
    values = dotenv_values(ROOT / ".env.example")
    for token in ("HF_TOKEN", "WANDB_API_KEY", "OPENROUTER_API_KEY", "FLIPSIDE_API_KEY"):
        assert values[token] == ""  # named, never filled in
    lines = [ln for ln in (ROOT / ".env.example").read_text().splitlines() if ln and not ln.startswith("#")]
    assert all("#" in ln for ln in lines)  # each setting says what it is
