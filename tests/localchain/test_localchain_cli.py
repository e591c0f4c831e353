"""`cortex chain` by wallet name (issue 20): init with an owner wallet, fund a wallet, register a hotkey with
an optional stake through the SDK, and `status` with balances and weights."""

from __future__ import annotations

import json
from pathlib import Path

import bittensor as bt
import pytest

from cortex.chain.connect import connect
from cortex.cli import main


def wallet_keys(wallets, name):
    pub = json.loads((wallets / name / "coldkeypub.txt").read_text())["ss58Address"]
    hot = json.loads((wallets / name / "hotkeys" / "default").read_text())["ss58Address"]
    return pub, hot


@pytest.fixture()
def world(tmp_path, capsys):
    chain, wallets = tmp_path / "chain.db", tmp_path / "wallets"
    for name in ("owner", "val"):
        assert main(["wallet", "create", "--wallet.name", name, "--wallet.path", str(wallets)]) == 0
    assert main(["chain", "init", "--chain.path", str(chain), "--manual-blocks", "--tempo", "5",
                 "--owner-wallet", "owner", "--wallet.path", str(wallets)]) == 0
    assert main(["chain", "fund", "--chain.path", str(chain), "--wallet.name", "val", "--wallet.path", str(wallets),
                 "--tao", "50"]) == 0
    capsys.readouterr()
    return chain, wallets


def test_owner_wallet_owns_the_subnet(world):
    chain, wallets = world
    coldkey, hotkey = wallet_keys(wallets, "owner")
    sub = connect("embedded", chain)
    assert sub.query(bt.storage.SubtensorModule.SubnetOwner, [1]) == coldkey
    assert sub.query(bt.storage.SubtensorModule.SubnetOwnerHotkey, [1]) == hotkey


def test_register_with_stake_then_status(world, capsys):
    chain, wallets = world
    flags = ["--chain.path", str(chain), "--wallet.name", "val", "--wallet.path", str(wallets)]
    assert main(["chain", "register", *flags, "--stake", "20"]) == 0
    out = capsys.readouterr().out
    assert "registered val/default" in out and "staked 20 TAO to uid" in out
    assert main(["chain", "register", *flags]) == 0  # a second time: says so, changes nothing
    assert "already registered" in capsys.readouterr().out

    assert main(["chain", "status", "--chain.path", str(chain), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    coldkey, hotkey = wallet_keys(wallets, "val")
    neuron = next(n for n in status["neurons"] if n["hotkey"] == hotkey)
    assert neuron["stake"] == pytest.approx(20.0) and neuron["weights"] == {}
    balance = next(b for b in status["balances"] if b["coldkey"] == coldkey)
    burn = 50 - 20 - balance["free"]  # what registration burned
    assert 0 < burn <= 50 - 20 and balance["staked"] == pytest.approx(20.0)
    assert balance["hotkeys"] == {hotkey: pytest.approx(20.0)}

    assert main(["chain", "status", "--chain.path", str(chain)]) == 0
    text = capsys.readouterr().out
    assert "free TAO" in text and f"{balance['free']:.3f}" in text


def test_register_refuses_what_the_chain_refuses(world, capsys):
    chain, wallets = world
    flags = ["--chain.path", str(chain), "--wallet.name", "val", "--wallet.path", str(wallets)]
    assert main(["chain", "register", *flags, "--stake", "5000"]) == 2  # more than the coldkey holds
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("cortex chain: error: staking 5000 TAO")
    assert main(["chain", "register", *flags, "--netuid", "9"]) == 2
    assert "subnet 9 does not exist" in capsys.readouterr().err


def test_status_shows_weights_a_validator_set(world, capsys):
    chain, wallets = world
    flags = ["--chain.path", str(chain), "--wallet.path", str(wallets)]
    assert main(["chain", "register", *flags, "--wallet.name", "val", "--stake", "20"]) == 0
    sub = connect("embedded", chain)
    wallet = bt.Wallet("val", "default", path=str(wallets))
    uid = sub.query(bt.storage.SubtensorModule.Uids, [1, wallet.hotkey.ss58_address])
    sub.execute(bt.SetWeights(netuid=1, uids=[uid], weights=[1.0], version_key=0), wallet).raise_for_failure()
    capsys.readouterr()
    assert main(["chain", "status", "--chain.path", str(chain), "--json"]) == 0
    neuron = next(n for n in json.loads(capsys.readouterr().out)["neurons"] if n["uid"] == uid)
    assert neuron["weights"] == {str(uid): pytest.approx(1.0)}  # JSON keys are strings


def test_base_point_commits_the_newest_revision(world, tmp_path, capsys):
    """The owner's first pointer (`cortex base point`, rollback's other name) goes to the store's newest
    revision when no --to is given."""
    from cortex.hub.store import open_store
    from cortex.model.random_base import build_base

    chain, wallets = world
    root = Path(__file__).resolve().parents[2]
    base = build_base(tmp_path / "base", "llama3", (root / "tests/data/chat_templates/llama3_1.jinja").read_text(),
                      ["a small corpus of words", "and some more words"] * 20)
    store = open_store(f"local:{tmp_path / 'store'}")
    first = store.upload("cortex/tiny-llama", base, private=False)
    (base / "notes.txt").write_text("a second revision")
    newest = store.upload("cortex/tiny-llama", base, private=False)
    assert first != newest and store.revisions("cortex/tiny-llama")[0] == newest
    flags = ["--chain.path", str(chain), "--wallet.name", "owner", "--wallet.path", str(wallets)]
    assert main(["chain", "fund", *flags, "--tao", "10"]) == 0
    assert main(["chain", "register", *flags]) == 0
    capsys.readouterr()
    assert main(["base", "point", "--netuid", "1", *flags, "--store", f"local:{tmp_path / 'store'}"]) == 0
    assert f"base pointer -> cortex/tiny-llama@{newest}" in capsys.readouterr().out
