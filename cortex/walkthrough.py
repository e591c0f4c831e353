"""`cortex walkthrough`: the embedded chain, the model store and commitments, end to end.

What `make demo` runs until the local subnet (`cortex localnet`) lands: a fresh
chain and store in a work directory; a subnet owner, four miners and two
validators, all through the bittensor SDK; each miner uploads a model folder to
the local store privately, commits its pointer on chain, reads it back and makes
the repo public; the validators verify every commitment against the store and
set weights; Yuma runs; the status table is printed.

The miners' folders here hold random low-rank factors, not trained adapters, and
the validators weight the verified commitments by a fixed stand-in preference: it
shows the chain and protocol plumbing, and says so in its output.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import bittensor as bt
import numpy as np
from safetensors.numpy import save_file

from cortex.localchain.cli import chain_status
from cortex.localchain.backend import EmbeddedSubstrate
from cortex.chain.commitments import publish, read_all
from cortex.chain.connect import connect
from cortex.localchain.genesis import GenesisConfig, init_chain
from cortex.localchain.pallets import credit
from cortex.localchain.store import ChainFile
from cortex.localchain.subnet import RAO, SubnetParams
from cortex.hub.local import LocalStore
from cortex.protocol.commitment import ModelCommitment
from cortex.protocol.hashing import content_hash
from cortex.wallets import create_wallet

NETUID, TEMPO, COMPETITION = 1, 10, "cortex-tiny"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", default="work/walkthrough", help="recreated on every run")
    parser.set_defaults(func=run)


def _model_folder(root: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / f"model-{seed}"
    folder.mkdir(parents=True)
    tensors = {f"layer{k}.lora_{ab}": rng.standard_normal((8, 64)).astype(np.float32)
               for k in range(2) for ab in "AB"}
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "README.md").write_text(f"walkthrough folder {seed}: random factors, not a trained adapter\n")
    return folder


def run(args: argparse.Namespace) -> int:
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    wallets = work / "wallets"
    owner = create_wallet("owner", "default", str(wallets))
    init_chain(work / "chain.db", GenesisConfig(
        manual_blocks=True, netuid=NETUID, subnet=SubnetParams(tempo=TEMPO, weights_rate_limit=2),
        owner_coldkey=owner.coldkeypub.ss58_address, owner_hotkey=owner.hotkey.ss58_address))
    sub, chain = connect("embedded", work / "chain.db"), EmbeddedSubstrate(work / "chain.db")
    store = LocalStore(work / "store")
    names = ["owner"] + [f"miner{k}" for k in range(4)] + ["validator0", "validator1"]
    people = {name: create_wallet(name, "default", str(wallets)) for name in names}
    with ChainFile(work / "chain.db").transaction() as s:
        for wallet in people.values():
            credit(s, wallet.coldkeypub.ss58_address, 1000 * RAO)
    print(f"chain {work / 'chain.db'}: subnet {NETUID}, tempo {TEMPO}; store {work / 'store'}")
    for name, wallet in people.items():
        sub.execute(bt.BurnedRegister(netuid=NETUID), wallet).raise_for_failure()
    for name, tao in (("validator0", 300), ("validator1", 100)):
        hotkey = people[name].hotkey.ss58_address
        sub.execute(bt.AddStake(netuid=NETUID, hotkey_ss58=hotkey, amount_tao=tao), people[name]).raise_for_failure()
    print("registered the owner, 4 miners and 2 validators; staked the validators (300 and 100 TAO)")

    for k in range(4):
        wallet, repo = people[f"miner{k}"], f"miner{k}/walkthrough-model"
        folder = _model_folder(work / "folders", k)
        revision = store.upload(repo, folder, private=True)
        commitment = ModelCommitment.for_content(COMPETITION, repo, revision, content_hash(folder),
                                                 wallet.hotkey.ss58_address)
        block = publish(sub, wallet, NETUID, commitment)
        store.set_visibility(repo, private=False)
        print(f"miner{k}: uploaded {repo}@{revision[:12]} privately, committed at block {block}, made public")

    chain.advance(TEMPO)
    verified = []
    for record in read_all(sub, NETUID):
        c = record.commitment
        ok = c is not None and c.verify(content_hash(store.download(
            c.repo_id, c.revision, work / "fetched" / record.hotkey, allow={"adapter_model.safetensors", "README.md"},
            max_bytes=1 << 20)), record.hotkey)
        verified.append((record.uid, ok))
    uids = [uid for uid, ok in verified if ok]
    print(f"validators verified {len(uids)} of {len(verified)} commitments against the store")
    preference = {uid: 1.0 / (rank + 1) for rank, uid in enumerate(sorted(uids))}  # stand-in scores
    for name in ("validator0", "validator1"):
        sub.execute(bt.SetWeights(netuid=NETUID, uids=list(preference), weights=list(preference.values())),
                    people[name]).raise_for_failure()
    print("validators set weights from a fixed stand-in preference (validator scoring is not wired in yet)")
    chain.advance(TEMPO)

    status = chain_status(str(work / "chain.db"), NETUID)
    print(f"\nblock {status['block']}, after {status['block'] // TEMPO} epochs")
    print(f"{'uid':>3} {'name':<11} {'stake':>9} {'incentive':>9} {'dividends':>9} {'vtrust':>7}  commitment")
    for n, name in zip(status["neurons"], names):
        print(f"{n['uid']:>3} {name:<11} {n['stake']:>9.2f} {n['incentive']:>9.4f} {n['dividends']:>9.4f} "
              f"{n['validator_trust']:>7.4f}  {(n['commitment'] or '-')[:48]}")
    return 0
