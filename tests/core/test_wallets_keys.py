"""`cortex wallet`: keys never leave ``--wallet.path/NAME``, a watch-only wallet is never written to, every
bad input is one line with exit status 2, and offline wallets default to the project's own folder."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import pytest

from cortex.cli import build_parser, main
from cortex.neuron import add_args, neuron_fields
from cortex.wallets import BTCLI_PATH, OFFLINE_PATH, create_wallet, list_wallets

BAD_NAMES = ["../evil", "a/b", "", ".hidden", "..", "x\ny", "tab\tname", "/abs", "a" * 65]


def _files(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its sha256 (byte for byte)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


@pytest.mark.parametrize("flag", ["--wallet.name", "--wallet.hotkey"])
@pytest.mark.parametrize("bad", BAD_NAMES)
def test_bad_names_write_nothing_anywhere(tmp_path, capsys, flag, bad):
    wallets = tmp_path / "box" / "wallets"
    wallets.mkdir(parents=True)
    args = {"--wallet.name": "ok", "--wallet.hotkey": "default", flag: bad}
    argv = ["wallet", "create", "--wallet.path", str(wallets)] + [x for kv in args.items() for x in kv]
    assert main(argv) == 2
    assert "is not allowed" in _one_error_line(capsys)
    assert _files(tmp_path) == {}  # nothing inside the wallet folder, nothing beside or above it


def test_create_then_reuse_says_which(tmp_path, capsys):
    path = str(tmp_path / "w")
    assert main(["wallet", "create", "--wallet.name", "m", "--wallet.path", path]) == 0
    first = capsys.readouterr()
    assert first.out.startswith("created wallet m/default") and "unencrypted" in first.err
    before = _files(tmp_path)
    assert main(["wallet", "create", "--name", "m", "--hotkey", "default", "--path", path]) == 0  # the aliases
    again = capsys.readouterr()
    assert again.out.startswith("reused wallet m/default") and again.err == ""
    assert _files(tmp_path) == before
    assert main(["wallet", "create", "--wallet.name", "m", "--wallet.hotkey", "h2", "--wallet.path", path]) == 0
    assert capsys.readouterr().out.startswith("reused coldkey, created hotkey wallet m/h2")
    assert set(_files(tmp_path)) == set(before) | {"w/m/hotkeys/h2", "w/m/hotkeys/h2pub.txt"}


def test_watch_only_wallet_is_refused_and_untouched(tmp_path, capsys):
    full = create_wallet("source", "default", str(tmp_path / "keys"))
    watch = tmp_path / "w" / "watch"
    watch.mkdir(parents=True)
    (watch / "coldkeypub.txt").write_bytes((tmp_path / "keys" / "source" / "coldkeypub.txt").read_bytes())
    before = _files(tmp_path / "w")
    assert main(["wallet", "create", "--wallet.name", "watch", "--wallet.path", str(tmp_path / "w")]) == 2
    assert "watch-only" in _one_error_line(capsys)
    assert _files(tmp_path / "w") == before  # byte for byte, and no new file
    listed = {w["name"]: w for w in list_wallets(tmp_path / "w")}
    assert listed["watch"]["watch_only"] and listed["watch"]["coldkey"] == full.coldkeypub.ss58_address


def test_path_that_is_a_file_is_one_line(tmp_path, capsys):
    afile = tmp_path / "wallets.txt"
    afile.write_text("not a folder")
    for argv in (["wallet", "create", "--wallet.name", "m", "--wallet.path", str(afile)],
                 ["wallet", "create", "--wallet.name", "m", "--wallet.path", str(afile / "below")],
                 ["wallet", "list", "--wallet.path", str(afile)]):
        assert main(argv) == 2
        assert _one_error_line(capsys).startswith("cortex wallet: error:")
    assert afile.read_text() == "not a folder" and sorted(_files(tmp_path)) == ["wallets.txt"]


def test_list_shows_names_hotkeys_and_coldkeys(tmp_path, capsys):
    path = str(tmp_path / "w")
    a = create_wallet("alice", "default", path)
    b = create_wallet("alice", "hk2", path)
    assert main(["wallet", "list", "--wallet.path", path]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"alice  coldkey {a.coldkeypub.ss58_address}",
                   f"  hotkey default  {a.hotkey.ss58_address}",
                   f"  hotkey hk2  {b.hotkey.ss58_address}"]


def test_offline_wallets_default_to_the_projects_folder():
    assert OFFLINE_PATH == "~/.cortex/wallets" and ".bittensor" not in OFFLINE_PATH
    parser = argparse.ArgumentParser()
    add_args(parser, store=False, source=False, clock=False, wandb=False)
    offline = neuron_fields(parser.parse_args(["--netuid", "1", "--chain.path", "c.db"]), need_store=False)
    real = neuron_fields(parser.parse_args(["--netuid", "1", "--subtensor.network", "finney"]), need_store=False)
    given = neuron_fields(parser.parse_args(["--netuid", "1", "--wallet.path", "/w"]), need_store=False)
    assert (offline["wallet_path"], real["wallet_path"], given["wallet_path"]) == (OFFLINE_PATH, BTCLI_PATH, "/w")
    args = build_parser("wallet").parse_args(["wallet", "create", "--wallet.name", "x"])
    assert args.path == OFFLINE_PATH
