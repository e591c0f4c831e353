"""``.env``: the checkout's own or ``cortex --env-file PATH``, never the working directory's; the
environment wins, and an empty value counts as unset."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values

from cortex.cli import main
from cortex.envfile import checkout_root, env_file_path
from cortex.errors import run_command

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("CX_TEST_TOKEN", "CX_TEST_KEPT", "CX_TEST_EMPTY")


def _seen(env_file=None) -> dict:
    seen = {}

    def body() -> int:
        seen.update({n: os.environ.get(n) for n in NAMES})
        return 0

    assert run_command("test", body, env_file=env_file) == 0
    return seen


def test_explicit_env_file_fills_only_unset_nonempty_variables(tmp_path, monkeypatch):
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)  # restored (unset) after the test
    monkeypatch.setenv("CX_TEST_KEPT", "from the environment")
    env = tmp_path / "settings.env"
    env.write_text('CX_TEST_TOKEN=secret  # a comment\nCX_TEST_KEPT=from the file\nCX_TEST_EMPTY=\n')
    seen = _seen(str(env))
    assert seen == {"CX_TEST_TOKEN": "secret", "CX_TEST_KEPT": "from the environment", "CX_TEST_EMPTY": None}


def test_a_stray_env_in_the_working_directory_is_ignored(tmp_path, monkeypatch):
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text("CX_TEST_TOKEN=redirected\nHF_ENDPOINT=http://attacker.invalid\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert _seen()["CX_TEST_TOKEN"] is None
    assert "HF_ENDPOINT" not in os.environ


def test_the_checkout_env_is_the_one_read_by_default():
    assert checkout_root() == ROOT  # the tests run from a checkout (editable install)
    assert env_file_path() == ROOT / ".env"


def test_cortex_env_file_flag_is_read(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CX_TEST_TOKEN", raising=False)  # removed again after the test
    env = tmp_path / "my.env"
    env.write_text("CX_TEST_TOKEN=from the flag\n")
    assert main(["--env-file", str(env), "wallet", "list", "--wallet.path", str(tmp_path / "w")]) == 0
    assert os.environ["CX_TEST_TOKEN"] == "from the flag"
    assert capsys.readouterr().out.startswith("no wallets in")


def test_a_missing_env_file_is_one_line(tmp_path, capsys):
    missing = tmp_path / "nope.env"
    assert main(["--env-file", str(missing), "wallet", "list", "--wallet.path", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"cortex wallet: error: --env-file {missing}: no such file"]


def test_the_template_names_the_tokens_and_sets_none():
    values = dotenv_values(ROOT / ".env.example")
    for token in ("HF_TOKEN", "WANDB_API_KEY", "OPENROUTER_API_KEY", "FLIPSIDE_API_KEY"):
        assert values[token] == ""  # named, never filled in
    lines = [ln for ln in (ROOT / ".env.example").read_text().splitlines() if ln and not ln.startswith("#")]
    assert all("#" in ln for ln in lines)  # each setting says what it is
