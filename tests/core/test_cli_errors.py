"""Every wrong input to a command line ends in one line on stderr, exit status 2 and no traceback
(issue 20): argument errors, out-of-range numbers, bad dataset splits and rows, stray exceptions in
any entry point; a reader that closes the pipe early ends the command quietly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cortex.cli import main
from cortex.errors import run_command

REPO = Path(__file__).resolve().parents[2]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """``cortex ARGV`` in this process: its exit status (argparse's too), stdout and stderr."""
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line(status: int, err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err and "error:" in lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("flags, needle", [
    (["--tempo", "-5"], "--tempo: must be at least 1, got -5"),
    (["--tempo", "0"], "--tempo: must be at least 1, got 0"),
    (["--netuid", "-1"], "--netuid: must be between 1 and 65535"),
    (["--netuid", "0"], "--netuid"),
    (["--max-uids", "0"], "--max-uids"),
    (["--max-validators", "-3"], "--max-validators"),
    (["--activity-cutoff", "0"], "--activity-cutoff"),
    (["--kappa", "70000"], "--kappa: must be between 0 and 65535"),
    (["--block-time", "nan"], "--block-time"),
    (["--block-time", "-1"], "--block-time"),
    (["--tempo", "ten"], "expected a whole number"),
])
def test_chain_init_refuses_out_of_range(flags, needle, tmp_path, capsys):
    chain = tmp_path / "chain.db"
    status, _, err = run(["chain", "init", "--chain.path", str(chain), *flags], capsys)
    assert_one_line(status, err, needle)
    assert not chain.exists()  # refused before anything was written


@pytest.fixture()
def chain_file(tmp_path, capsys):
    path = tmp_path / "chain.db"
    assert main(["chain", "init", "--path", str(path), "--manual-blocks", "--tempo", "10"]) == 0  # --path: the alias
    capsys.readouterr()
    return path


@pytest.mark.parametrize("tao", ["nan", "inf", "-inf", "-1", "0", "lots"])
def test_chain_fund_refuses_bad_amounts(tao, chain_file, capsys):
    alice = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
    status, _, err = run(["chain", "fund", "--chain.path", str(chain_file), "--ss58", alice, "--tao", tao], capsys)
    assert_one_line(status, err, "--tao")


def test_chain_commands_refuse_a_missing_file(tmp_path, capsys):
    missing = tmp_path / "none.db"
    for argv in (["fund", "--ss58", "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY", "--tao", "1"],
                 ["advance"], ["status"]):
        status, _, err = run(["chain", *argv, "--chain.path", str(missing)], capsys)
        assert_one_line(status, err, "cortex chain init")
    assert not missing.exists()


def test_chain_advance_refuses_zero_blocks(chain_file, capsys):
    status, _, err = run(["chain", "advance", "--chain.path", str(chain_file), "--blocks", "0"], capsys)
    assert_one_line(status, err, "--blocks: must be at least 1")


@pytest.mark.parametrize("flags, needle", [
    (["--port", "99999"], "--port: must be between 1 and 65535, got 99999"),
    (["--port", "0"], "--port"),
    (["--port", "http"], "--port"),
    (["--ttl", "nan"], "--ttl"),
])
def test_leaderboard_refuses_bad_numbers(flags, needle, capsys):
    status, _, err = run(["leaderboard", *flags], capsys)
    assert_one_line(status, err, needle)


def test_leaderboard_refuses_a_port_in_use(chain_file, capsys):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        status, _, err = run(["leaderboard", "--chain.path", str(chain_file), "--port", str(port)], capsys)
    assert_one_line(status, err, f"127.0.0.1:{port}", "--port")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "ds"
    assert main(["data", "build", "--source", "synthetic", "--assets", "BTC", "--horizons", "1", "--start",
                 "2024-01-01", "--end", "2024-02-15", "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.mark.parametrize("flags, needle", [
    (["--split", "nope"], "has no split 'nope' (it has train, validation, test)"),
    (["--row", "999999"], "--row 999999 is out of range"),
    (["--row", "-1"], "--row -1 is out of range"),
    (["--split", "nope", "--row", "999999"], "has no split 'nope'"),
])
def test_data_show_refuses_what_is_not_there(flags, needle, dataset, capsys):
    status, out, err = run(["data", "show", str(dataset), *flags], capsys)
    assert_one_line(status, err, needle)
    assert out == ""  # not the card followed by silence


def test_data_show_prints_a_row(dataset, capsys):
    status, out, _ = run(["data", "show", str(dataset), "--split", "test", "--row", "0"], capsys)
    assert status == 0 and "--- outcome" in out and '"splits"' in out


def test_data_show_into_a_closed_pipe_is_quiet(dataset):
    """`cortex data show … | head -1`: the reader leaves early; no BrokenPipeError, no traceback."""
    shell = f"{sys.executable} -m cortex.cli data show {dataset} | head -1"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert done.stdout.strip() == "{", done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr


def test_a_stray_exception_is_one_line(capsys):
    def body():
        raise ValueError("the\nmessage")

    assert run_command("cortex x", body) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "cortex x: error: ValueError: the message (run again with --logging.debug for the traceback)"]
    assert run_command("cortex x", body, debug=True) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1] == "cortex x: error: ValueError: the message"


def test_interrupt_keeps_130(capsys):
    def body():
        raise KeyboardInterrupt

    assert run_command("cortex x", body) == 130
    assert capsys.readouterr().err.strip() == "interrupted"


@pytest.mark.parametrize("where", ["before", "after"])
def test_logging_debug_before_or_after_the_subcommand(where, tmp_path, capsys, monkeypatch):
    import cortex.localchain.cli as chain_cli

    def boom(path, netuid):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(chain_cli, "chain_status", boom)
    argv = ["chain", "status", "--chain.path", str(tmp_path / "c.db")]
    argv = ["--logging.debug", *argv] if where == "before" else [*argv, "--logging.debug"]
    status, _, err = run(argv, capsys)
    assert status == 2
    assert "Traceback" in err and err.strip().splitlines()[-1] == "cortex chain: error: RuntimeError: unexpected"


def test_unknown_command_and_bad_flag_are_one_line(capsys):
    assert_one_line(*run(["nope"], capsys)[::2], "invalid choice")
    assert_one_line(*run(["chain", "status", "--chain.path", "c.db", "--nope"], capsys)[::2], "unrecognized arguments: --nope")


@pytest.mark.slow  # three processes that import torch, 25-40 s each on a busy 2-core machine
@pytest.mark.parametrize("role", ["miner", "validator", "averager"])
def test_neurons_one_line(role, tmp_path):
    """Each entry point, as a process: a bad number and an unreadable chain are one line, status 2."""
    script = str(REPO / "neurons" / f"{role}.py")
    bad = subprocess.run([sys.executable, script, "--netuid", "one"], capture_output=True, text=True, timeout=120)
    assert_one_line(bad.returncode, bad.stderr, "--netuid")
    extra = ["--competition", "cortex-tiny"] if role == "averager" else []
    junk = tmp_path / "chain.db"
    junk.write_text("not a chain")
    broken = subprocess.run(
        [sys.executable, script, "--netuid", "1", "--subtensor.network", "embedded", "--chain.path", str(junk),
         "--wallet.name", "nobody", "--wallet.path", str(tmp_path / "wallets"), *extra],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    errors = [line for line in broken.stderr.splitlines() if "error:" in line]
    assert broken.returncode == 2, broken.stderr[-2000:]
    assert "Traceback" not in broken.stderr and len(errors) == 1, broken.stderr[-2000:]


NETUID = (["--netuid", "-1"], "--netuid: must be between 0 and 65535")
CLOCK = (["--netuid", "1", "--chain.path", "c.db", "--clock.blocks-per-day", "0"], "--clock.blocks-per-day must be")


@pytest.mark.parametrize("role, flags, needle", [  # the miner takes no market clock
    ("miner", *NETUID), ("validator", *NETUID), ("averager", *NETUID), ("validator", *CLOCK), ("averager", *CLOCK)])
def test_neuron_numbers_out_of_range(role, flags, needle, capsys):
    import importlib

    module = importlib.import_module(f"neurons.{role}")
    try:
        status = module.main([*flags, "--competition", "cortex-tiny"])
    except SystemExit as exc:  # argparse's refusal
        status = exc.code
    assert_one_line(status, capsys.readouterr().err, needle)


@pytest.mark.parametrize("flags, needle", [
    (["--stride", "0"], "--stride: must be at least 1"),
    (["--fractions", "a,b"], "--fractions takes three shares"),
    (["--horizons", "0"], "horizons must be whole days"),
])
def test_data_build_refuses_bad_numbers(flags, needle, tmp_path, capsys):
    status, _, err = run(["data", "build", "--out", str(tmp_path / "ds"), "--no-progress", *flags], capsys)
    assert_one_line(status, err, needle)
    assert not (tmp_path / "ds").exists()
