"""What a validator checks when it starts, before any evaluation (issues 20 and 21): its hotkey is
registered and may set weights (``cortex.chain.registration``), and every pinned base revision is in
its repo's listing in the model store (``cortex.model.pointer.check_pinned``). Each failure is one
line and exit status 2 from ``neurons/validator.py``, and nothing is evaluated or written."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import bittensor as bt
import pytest
from chainkit import NETUID, make_chain

from cortex.chain.registration import NotRegistered, require_registered, require_validator
from cortex.errors import CortexError
from cortex.hub.local import LocalStore
from cortex.model.pointer import check_pinned
from cortex.protocol.competition import BUILTIN_COMPETITIONS, BaseModelRef

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from neurons.validator import main as validator_main  # noqa: E402

CORTEX_8B = BUILTIN_COMPETITIONS["cortex-8b"]


@pytest.fixture
def chain(tmp_path):
    return make_chain(tmp_path, tempo=10)


def start(chain, tmp_path, name: str, *extra: str) -> int:
    return validator_main(["--netuid", str(NETUID), "--wallet.name", name, "--wallet.path", str(chain.wallet_path),
                           "--subtensor.network", "embedded", "--chain.path", str(chain.path),
                           "--store", f"local:{tmp_path / 'store'}", "--state", str(tmp_path / name / "state.json"),
                           "--wandb.off", "--once", *extra])


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_an_unregistered_validator_stops_with_one_line_before_any_evaluation(chain, tmp_path, capsys):
    chain.wallet("stranger")  # a funded coldkey, its hotkey never registered
    assert start(chain, tmp_path, "stranger") == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("validator: error: hotkey ") and "is not registered on subnet 1" in line
    assert f"cortex chain register --netuid {NETUID} --stake TAO" in line  # what to do, on the embedded chain
    folder = tmp_path / "stranger"
    assert not (folder / "state.json").exists() and not (folder / "scores").exists()  # no round began
    assert not (folder / "cache").exists()  # no base or adapter was fetched


def test_a_validator_without_stake_cannot_earn_a_permit_and_stops(chain, tmp_path, capsys):
    chain.register("unstaked")
    assert start(chain, tmp_path, "unstaked") == 2
    line = one_line(capsys.readouterr().err)
    assert "has no validator permit (no stake)" in line and "--stake TAO" in line
    assert not (tmp_path / "unstaked" / "state.json").exists()


def test_permits_stakes_and_the_real_network_hint(chain, caplog):
    wallet = chain.register("v")
    hotkey = wallet.hotkey.ss58_address
    chain.sub.execute(bt.AddStake(netuid=NETUID, hotkey_ss58=hotkey, amount_tao=100), wallet).raise_for_failure()
    with caplog.at_level("WARNING"):
        before = require_validator(chain.sub, NETUID, hotkey, "embedded")  # staked: the next epoch gives a permit
    assert not before.validator_permit and before.stake > 0 and "no validator permit yet" in caplog.text
    chain.advance(11)  # an epoch
    after = require_validator(chain.sub, NETUID, hotkey, "embedded")
    assert after.validator_permit and after.uid == before.uid
    assert require_registered(chain.sub, NETUID, hotkey, "embedded").uid == after.uid

    nobody = chain.wallet("nobody").hotkey.ss58_address
    with pytest.raises(NotRegistered, match=r"btcli subnet register --netuid 1` and `btcli stake add --netuid 1`"):
        require_validator(chain.sub, NETUID, nobody, "finney")
    with pytest.raises(NotRegistered, match=r"register it with `btcli subnet register --netuid 1`, then start the miner"):
        require_registered(chain.sub, NETUID, nobody, "finney", role="miner")
    with pytest.raises(NotRegistered, match="subnet 9 does not exist"):
        require_registered(chain.sub, 9, hotkey, "embedded")


def test_the_pinned_revision_is_checked_against_the_stores_listing(tmp_path):
    store = LocalStore(tmp_path / "store")
    with pytest.raises(CortexError, match="cannot list meta-llama/Llama-3.1-8B-Instruct's revisions"):
        check_pinned(CORTEX_8B, store)  # the store does not hold the repo at all

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    listed = store.upload(CORTEX_8B.base.repo, folder, private=False)
    with pytest.raises(CortexError) as wrong:  # the repo is there, the pinned commit is not
        check_pinned(CORTEX_8B, store)
    text = str(wrong.value)
    assert "\n" not in text and CORTEX_8B.base.revision in text and "is not in meta-llama/Llama-3.1-8B-Instruct's" in text
    assert f"newest {listed[:12]}" in text

    pinned_right = dataclasses.replace(CORTEX_8B, base=BaseModelRef(CORTEX_8B.base.repo, revision=listed))
    assert check_pinned(pinned_right, store) is None
    genesis = BUILTIN_COMPETITIONS["cortex-tiny"]  # a built-in genesis base has no pin: nothing to check
    assert genesis.base.revision is None and check_pinned(genesis, store) is None


def test_a_validator_whose_pinned_revision_is_not_listed_stops_with_one_line(chain, tmp_path, capsys):
    wallet = chain.register("v8b")
    chain.sub.execute(bt.AddStake(netuid=NETUID, hotkey_ss58=wallet.hotkey.ss58_address, amount_tao=100),
                      wallet).raise_for_failure()
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    LocalStore(tmp_path / "store").upload(CORTEX_8B.base.repo, folder, private=False)
    assert start(chain, tmp_path, "v8b", "--competitions", "cortex-8b") == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("validator: error: cortex-8b: the pinned base revision 0e9e39f249a1")
    assert not (tmp_path / "v8b" / "state.json").exists()


def test_the_pinned_revision_is_checked_against_the_hubs_commit_listing(tmp_path, monkeypatch):
    """The same check through the real ``huggingface_hub`` client (``HFStore``) against a fake Hub's commit list."""
    from hub_server import TOKEN, FakeHub

    from cortex.hub.hf import HFStore

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    with FakeHub() as hub:
        store = HFStore(hub.url, TOKEN)
        try:
            commit = store.upload(CORTEX_8B.base.repo, folder, private=False)
            with pytest.raises(CortexError, match=f"pinned base revision {CORTEX_8B.base.revision} is not in"):
                check_pinned(CORTEX_8B, store)
            pinned_right = dataclasses.replace(CORTEX_8B, base=BaseModelRef(CORTEX_8B.base.repo, revision=commit))
            assert commit in store.revisions(CORTEX_8B.base.repo) and check_pinned(pinned_right, store) is None
        finally:
            store.close()
