"""A small subnet for averager tests, on top of tests/support/validator_fixtures.py's base and adapters.

Miners: ``medium`` (the medium adapter), ``copy`` (the same files from another hotkey, committed
later), ``weak``; each upload names the base revision it was trained on in ``adapter_config.json``
(``revision``), as the miner's own upload does. ``owner`` is the subnet owner and so the averager
(the competition follows its base pointer). ``validator0`` is staked.

Merging a LoRA into the base at weight 1 gives exactly the model that LoRA gives on the base, so a
round whose only input is ``medium`` publishes a base that answers like ``medium``. On that base a
miner then publishes ``upgrade``: the rank-16 adapter whose update is ΔW_strong − ΔW_medium (the
factors of ``strong`` and ``medium`` stacked, ``medium``'s B negated), so base + upgrade answers
like ``strong``: a real adapter of the new base that makes it strictly better.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import bittensor as bt
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).parent))
from chainkit import NETUID, LocalChain, make_chain
from validator_fixtures import COMPETITION, TINY_REPO, Artifacts

from cortex.hub.local import LocalStore
from cortex.protocol.commitment import ModelCommitment
from cortex.protocol.competition import CompetitionSchedule

COMP = COMPETITION.id
COMPETITION16 = dataclasses.replace(COMPETITION, adapters=dataclasses.replace(COMPETITION.adapters, max_rank=16))
SCHEDULE16 = CompetitionSchedule((COMPETITION16,))
START_DAY, BLOCKS_PER_DAY, TEMPO = "2024-02-16", 1, 10


def stage(folder: Path, dest: Path, base_revision: str) -> Path:
    """The upload folder: the adapter with its config naming the base revision it was trained on."""
    shutil.copytree(folder, dest)
    cfg = json.loads((dest / "adapter_config.json").read_text())
    cfg["revision"] = base_revision
    (dest / "adapter_config.json").write_text(json.dumps(cfg, indent=2))
    return dest


def upgrade(strong: Path, medium: Path, out: Path) -> Path:
    """The adapter whose update is ΔW_strong − ΔW_medium (rank 16, same scaling)."""
    s, m = load_file(str(strong / "adapter_model.safetensors")), load_file(str(medium / "adapter_model.safetensors"))
    tensors = {k: torch.cat([s[k], m[k]], 0) if "lora_A" in k else torch.cat([s[k], -m[k]], 1) for k in s}
    out.mkdir(parents=True)
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    cfg = json.loads((strong / "adapter_config.json").read_text())
    cfg.update(r=2 * cfg["r"], lora_alpha=2 * cfg["lora_alpha"])
    (out / "adapter_config.json").write_text(json.dumps(cfg, indent=2))
    (out / "README.md").write_text("test adapter: strong minus medium\n")
    return out


def publish(c: LocalChain, store: LocalStore, name: str, folder: Path) -> tuple[str, str, int]:
    """Upload and commit ``folder`` from miner ``name`` with the miner's own publishing code."""
    from miner.publish import publish_adapter

    wallet = c.wallets.get(name) or c.register(name)
    done = publish_adapter(c.sub, wallet, NETUID, store, f"{name}/cortex-lora", folder, COMPETITION16)
    return done.repo_id, done.revision, done.block


def make_world(root: Path, art: Artifacts) -> tuple[LocalChain, LocalStore, str]:
    """The chain, the store and the genesis base revision; miners committed, the validator staked."""
    from cortex.model.bootstrap import publish as publish_base

    c = make_chain(root, tempo=TEMPO, weights_rate_limit=5)
    store = LocalStore(root / "store")
    (root / "competitions.yaml").write_text(json.dumps({"competitions": [COMPETITION16.to_dict()]}))
    owner = c.register("owner")
    genesis = publish_base(art.base, f"local:{store.root}")
    pointer = ModelCommitment.for_content(COMP, TINY_REPO, genesis, genesis, owner.hotkey.ss58_address, kind="base")
    c.commit("owner", pointer.encode()).raise_for_failure()
    uploads = root / "uploads"
    publish(c, store, "medium", stage(art.honest["medium"], uploads / "medium", genesis))
    publish(c, store, "weak", stage(art.honest["weak"], uploads / "weak", genesis))
    c.register("validator0")
    c.sub.execute(bt.AddStake(netuid=NETUID, hotkey_ss58=c.wallets["validator0"].hotkey.ss58_address,
                              amount_tao=100), c.wallets["validator0"]).raise_for_failure()
    c.advance(2)
    publish(c, store, "copy", stage(art.honest["medium"], uploads / "copy", genesis))
    return c, store, genesis
