"""docs/troubleshooting.md says what the commands print: every message the page quotes in a symptom cell
is produced here by running the command that meets it (in a temporary folder), and must appear in that
command's one error line, with exit status 2 and no traceback (issue 20).

A row is known by its symptom cell's first `code span`; the message is that span, or the cell's "quoted
text" when it has one;
``…`` and the page's placeholders (N, NAME, HOTKEY, P, DIR, HOST, PORT) match anything. Rows that quote
something other than a command's output (package names, chain error names the neurons handle themselves)
are listed in NOT_PRINTED with the reason, so a new row without a recipe here fails the test."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from cortex.cli import main as cortex

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "troubleshooting.md"
PLACEHOLDERS = {"N", "NAME", "HOTKEY", "P", "DIR", "HOST", "PORT", "PATH"}
NOT_PRINTED = {  # quoted symptom -> why no command is run for it
    "pip": "pip's own behaviour when installing torch",
    "make": "the Makefile's venv step",
    "bitsandbytes": "packages missing, not a message",
    "SettingWeightsTooFast": "a chain error the validator waits out by itself",
    "NeuronNoValidatorPermit": "a chain error name (the validator's start check words it)",
}


def symptoms() -> dict[str, str]:
    """Each table row's symptom cell that starts with a code span: that span -> the message it quotes
    (the cell's "quoted text" when it has one, else the span itself)."""
    found = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `"):
            continue
        cell = line.split(" | ")[0][2:]
        span = re.match(r"`([^`]+)`", cell).group(1)
        quoted = re.search(r'"([^"]+)"', cell)
        found[span] = quoted.group(1) if quoted else span
    return found


def pattern(message: str) -> re.Pattern:
    parts = re.split(r"(…|\b[A-Z]+\b)", message)
    return re.compile("".join(".+?" if p == "…" or p in PLACEHOLDERS else re.escape(p) for p in parts if p))


def run_cortex(argv, capsys):
    try:
        status = cortex(argv)
    except SystemExit as exc:
        status = exc.code
    return status, capsys.readouterr().err


def run_neuron(role: str, argv, capsys):
    import importlib

    module = importlib.import_module(f"neurons.{role}")
    try:
        status = module.main(argv)
    except SystemExit as exc:
        status = exc.code
    return status, capsys.readouterr().err


@pytest.fixture()
def chain(tmp_path, capsys):
    """A chain file with one funded, registered wallet (`reg`) and one funded, unregistered (`loose`)."""
    path, wallets = tmp_path / "chain.db", tmp_path / "wallets"
    assert cortex(["chain", "init", "--chain.path", str(path), "--manual-blocks"]) == 0
    for name in ("reg", "loose"):
        assert cortex(["wallet", "create", "--wallet.name", name, "--wallet.path", str(wallets)]) == 0
        assert cortex(["chain", "fund", "--chain.path", str(path), "--wallet.name", name, "--wallet.path",
                       str(wallets), "--tao", "10"]) == 0
    assert cortex(["chain", "register", "--chain.path", str(path), "--wallet.name", "reg", "--wallet.path",
                   str(wallets)]) == 0
    capsys.readouterr()
    return path, wallets


def neuron_flags(chain, wallet: str) -> list[str]:
    path, wallets = chain
    return ["--netuid", "1", "--subtensor.network", "embedded", "--chain.path", str(path), "--wallet.name", wallet,
            "--wallet.path", str(wallets)]


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "train.yaml"
    path.write_text(text)
    return str(path)


def _watch_only(tmp_path: Path, capsys):
    wallets = tmp_path / "w"
    assert cortex(["wallet", "create", "--wallet.name", "watch", "--wallet.path", str(wallets)]) == 0
    (wallets / "watch" / "coldkey").unlink()
    capsys.readouterr()
    return run_cortex(["wallet", "create", "--wallet.name", "watch", "--wallet.path", str(wallets)], capsys)


def _port_in_use(chain, capsys):
    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        return run_cortex(["leaderboard", "--chain.path", str(chain[0]), "--port", str(port)], capsys)


def _busy_workdir(tmp_path: Path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    return run_cortex(["localnet", "--workdir", str(tmp_path / "mine")], capsys)


# quoted message -> (what it needs, how to meet it)
RECIPES = {
    "--env-file … no such file": lambda t, c, k: run_cortex(
        ["--env-file", str(t / "none.env"), "chain", "status", "--chain.path", str(c[0])], k),
    "--workdir DIR holds files that cortex localnet did not make: choose a new or empty folder, or pass --force …":
        lambda t, c, k: _busy_workdir(t, k),
    "--subtensor.network embedded needs --chain.path": lambda t, c, k: run_neuron(
        "validator", ["--netuid", "1", "--subtensor.network", "embedded"], k),
    "no chain file at P": lambda t, c, k: run_cortex(["chain", "status", "--chain.path", str(t / "none.db")], k),
    "subnet N does not exist on …": lambda t, c, k: run_cortex(
        ["chain", "status", "--chain.path", str(c[0]), "--netuid", "7"], k),
    "hotkey … is not registered on subnet N": lambda t, c, k: run_neuron(
        "miner", [*neuron_flags(c, "loose"), "--store", f"local:{t / 'store'}", "--output-dir", str(t / "run"),
                  "--config", str(ROOT / "configs" / "tiny-cpu.yaml")], k),
    "wallet NAME/HOTKEY: no coldkey file at …": lambda t, c, k: run_neuron(
        "validator", [*neuron_flags(c, "nobody"), "--once"], k),
    "wallet name '…' is not allowed": lambda t, c, k: run_cortex(
        ["wallet", "create", "--wallet.name", "../evil", "--wallet.path", str(t / "w")], k),
    "wallet NAME at … is watch-only": lambda t, c, k: _watch_only(t, k),
    "--wallet.path … is a file": lambda t, c, k: run_cortex(
        ["wallet", "create", "--wallet.name", "a", "--wallet.path", str(c[0])], k),
    "qlora": lambda t, c, k: run_neuron(
        "miner", ["--netuid", "1", "--offline", "--config", _config(t, "finetuning_type: qlora\n"),
                  "--output-dir", str(t / "run")], k),
    "--engine vllm": lambda t, c, k: run_neuron(
        "validator", [*neuron_flags(c, "reg"), "--engine", "vllm", "--once"], k),
    "unknown key …": lambda t, c, k: run_neuron(
        "miner", ["--netuid", "1", "--offline", "--config", _config(t, "lora_rnak: 8\n"),
                  "--output-dir", str(t / "run")], k),
    "competition cortex-tiny has no base yet": lambda t, c, k: run_neuron(
        "miner", [*neuron_flags(c, "reg"), "--store", f"local:{t / 'store'}", "--output-dir", str(t / "run"),
                  "--config", str(ROOT / "configs" / "tiny-cpu.yaml")], k),
    "cannot listen on HOST:PORT": lambda t, c, k: _port_in_use(c, k),
}
GPU_ONLY = {"qlora", "--engine vllm"}  # the refusal is what a CPU machine prints


def test_every_quoted_message_has_a_recipe():
    quoted = symptoms()
    assert len(quoted) >= 10
    missing = [m for m in quoted if m not in RECIPES and m not in NOT_PRINTED]
    assert not missing, f"rows of {DOC.name} with no command that prints them here: {missing}"
    stale = [m for m in RECIPES if m not in quoted]
    assert not stale, f"recipes for messages the page no longer quotes: {stale}"


@pytest.mark.parametrize("span", sorted(RECIPES))
def test_the_command_prints_the_message(span, tmp_path, chain, capsys, monkeypatch):
    message = symptoms()[span]
    if span in GPU_ONLY:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU: the refusal is not printed here")
    monkeypatch.chdir(tmp_path)
    status, err = RECIPES[span](tmp_path, chain, capsys)
    lines = [line for line in err.splitlines() if "error:" in line]
    assert status == 2 and "Traceback" not in err, err[-2000:]
    assert len(lines) == 1, err[-2000:]
    assert pattern(message).search(lines[0]), f"{message!r} is not what the command printed: {lines[0]}"
