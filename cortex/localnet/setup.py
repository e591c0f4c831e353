"""Setting up a local subnet: a fresh chain and store, wallets, registrations, stakes, the base.

Genesis is the only step that writes the chain file directly (as `cortex chain init` does);
funding uses the dev chain's faucet; registrations, stakes and the owner's genesis base pointer go
through the bittensor SDK exactly as on a real network.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bittensor as bt

from cortex.chain.commitments import publish
from cortex.chain.connect import connect
from cortex.localchain.genesis import GenesisConfig, init_chain
from cortex.localchain.pallets import credit
from cortex.localchain.store import ChainFile
from cortex.localchain.subnet import RAO, SubnetParams
from cortex import workdir
from cortex.errors import CortexError
from cortex.hub.local import LocalStore
from cortex.localnet.config import Settings
from cortex.localnet.processes import Command
from cortex.model.bootstrap import BootstrapConfig
from cortex.protocol.commitment import ModelCommitment
from cortex.protocol.competition import CORTEX_TINY
from cortex.wallets import create_wallet

log = logging.getLogger(__name__)
FUNDS_TAO = 1000.0
BASE_DIR = "base"
BASE_REPO = CORTEX_TINY.base.repo  # cortex/tiny-llama, where `cortex base bootstrap --store` publishes


@dataclass(frozen=True)
class Member:
    name: str  # wallet name: owner, miner0…, validator0…
    role: str  # owner | miner | validator
    hotkey: str
    uid: int
    stake: float


def subnet_params(s: Settings) -> SubnetParams:
    """A subnet for a fast demo: a short tempo, weights every round, nobody pruned or deregistered."""
    return SubnetParams(tempo=s.tempo, weights_rate_limit=1, immunity_period=100_000, activity_cutoff=100_000,
                        max_validators=64, max_uids=max(16, s.miners + s.validators + 1))


def validator_stakes(s: Settings) -> list[float]:
    """Unequal stakes (300, 200, 100, 100, …), so consensus is stake-weighted for real."""
    return [max(100.0, 300.0 - 100.0 * k) for k in range(s.validators)]


# the work directory is emptied on every run: only one localnet made (its marker, or an older run's plan)
OWNER = workdir.Owner("cortex localnet", "--workdir", legacy=("localnet.json",))


def prepare_workdir(s: Settings) -> None:
    """Empty the work directory (one that localnet made, or a new or empty one), keeping a bootstrapped
    base that a later run can reuse."""
    workdir.clear(s.workdir, OWNER, keep=(BASE_DIR,), force=s.force)


def create_chain(s: Settings) -> dict[str, Member]:
    """Genesis, wallets, funds, registrations (owner first: uid 0) and validator stakes."""
    wallets = str(s.wallet_path)
    owner = create_wallet("owner", "default", wallets)
    init_chain(s.chain_path, GenesisConfig(
        block_time=s.block_time, manual_blocks=True, netuid=s.netuid, subnet=subnet_params(s),
        owner_coldkey=owner.coldkeypub.ss58_address, owner_hotkey=owner.hotkey.ss58_address))
    people = {"owner": ("owner", owner)}
    for name in s.miner_names():
        people[name] = ("miner", create_wallet(name, "default", wallets))
    for name in s.validator_names():
        people[name] = ("validator", create_wallet(name, "default", wallets))
    with ChainFile(s.chain_path).transaction() as tx:
        for _, wallet in people.values():
            credit(tx, wallet.coldkeypub.ss58_address, int(FUNDS_TAO * RAO))
    sub = connect("embedded", s.chain_path)
    for name, (_, wallet) in people.items():
        _ok(sub.execute(bt.BurnedRegister(netuid=s.netuid), wallet), f"registering {name}")
    for name, tao in zip(s.validator_names(), validator_stakes(s)):
        hotkey = people[name][1].hotkey.ss58_address
        _ok(sub.execute(bt.AddStake(netuid=s.netuid, hotkey_ss58=hotkey, amount_tao=tao), people[name][1]),
            f"staking {tao} TAO to {name}")
    members = {}
    for name, (role, wallet) in people.items():
        hotkey = wallet.hotkey.ss58_address
        uid = sub.query(bt.storage.SubtensorModule.Uids, [s.netuid, hotkey])
        stake = dict(zip(s.validator_names(), validator_stakes(s))).get(name, 0.0)
        members[name] = Member(name, role, hotkey, int(uid), stake)
    return members


def _ok(result: bt.ExtrinsicResult, what: str) -> None:
    if not result.success:
        raise CortexError(f"{what} failed on the local chain: {result.message}")


def bootstrap_command(s: Settings) -> Command:
    """`cortex base bootstrap` as a child process (its log shows the parse rate it reaches)."""
    argv = [sys.executable, "-m", "cortex.cli", "base", "bootstrap", "--out", str(s.workdir / BASE_DIR),
            "--store", f"local:{s.store_path}", "--source", s.market, "--seed", str(s.seed),
            "--steps", str(s.base_steps), "--threads", str(s.alone_threads),
            "--eval-prompts", str(s.benchmark_prompts)]  # progress bars: the view shows the log's last line
    return Command("bootstrap", argv, s.log_path(None, "bootstrap"))


def reusable_base(s: Settings) -> str | None:
    """The revision of a base an earlier run bootstrapped with the same source and steps, if any."""
    report = s.workdir / BASE_DIR / "bootstrap.json"
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return None
    config = data.get("config", {})
    # the recipe's knobs too: a base built by an older recipe (one style only) is built again
    wanted = {"source": s.market, "seed": s.seed, "steps": s.base_steps, "threads": s.alone_threads,
              "eval_prompts": s.benchmark_prompts, "words_fraction": BootstrapConfig.words_fraction,
              "informed_horizons": list(BootstrapConfig.informed_horizons),
              "forecast_strength": BootstrapConfig.forecast_strength}
    if any(config.get(k) != v for k, v in wanted.items()):
        return None
    return data.get("revision")


def publish_base(s: Settings) -> str:
    """Upload a reused base's published files to the fresh store (what `--store` did when it was built)."""
    report = base_report(s)
    with tempfile.TemporaryDirectory(prefix="localnet-base-") as tmp:
        for name in report["published_files"]:
            shutil.copyfile(s.workdir / BASE_DIR / name, Path(tmp) / name)
        revision = LocalStore(s.store_path).upload(BASE_REPO, Path(tmp), private=False, message="cortex base bootstrap")
    if revision != report["revision"]:
        raise CortexError(f"{s.workdir / BASE_DIR} changed since it was bootstrapped: delete it and run again")
    return revision


def benchmark_file(s: Settings) -> Path:
    """The fixed questions the averager scores every base on: the bootstrap's held-out check, drawn from its
    test split, later than every day a miner trains on or a validator scores in a run from 2024."""
    from cortex.model.bootstrap import QUESTIONS

    return s.workdir / BASE_DIR / QUESTIONS


def base_report(s: Settings) -> dict:
    return json.loads((s.workdir / BASE_DIR / "bootstrap.json").read_text())


def commit_genesis_pointer(s: Settings, revision: str, competition_id: str) -> int:
    """The subnet owner points the competition at the bootstrapped base (what the averager later moves).

    The local store names a revision by the content hash of its files, which is what the pointer's
    salted hash covers; validators check it against the files they download.
    """
    from cortex.wallets import load_wallet

    owner = load_wallet("owner", "default", str(s.wallet_path))
    pointer = ModelCommitment.for_content(competition_id, BASE_REPO, revision, revision, owner.hotkey.ss58_address,
                                          kind="base")
    return publish(connect("embedded", s.chain_path), owner, s.netuid, pointer)


def write_plan(s: Settings, members: dict[str, Member]) -> Path:
    """``localnet.json``: the settings and who is who (the view, the summary and people read it)."""
    path = s.workdir / "localnet.json"
    settings = {k: (str(v) if isinstance(v, (Path,)) or hasattr(v, "isoformat") else v)
                for k, v in s.__dict__.items()}
    path.write_text(json.dumps({"settings": settings, "members": [m.__dict__ for m in members.values()]}, indent=1))
    return path
