"""An averager round given hostile adapters (issue 11): the averager's fetch refuses each one with the
reason code a validator's fetch and checks give the same revision (NaN, a pickle file, a wrong shape,
a huge norm, and hostile files under a copied commitment), and the round merges the rest exactly.

No chain is needed: the commitments are built as the chain would return them, the adapters and the
base live in a local model store, and the round's own steps run (``Averager._fetch``: list, download,
``cortex.adapter`` checks against the base, salted hash; ``Averager._merge``: the streaming exact
merge). The validator's verdict comes from its own code path (``validator.fetch`` then
``cortex.adapter.check_adapter``, as ``validator.round`` runs them).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from averager import select as S
from averager.config import AveragerConfig
from averager.service import Averager, Parts
from cortex.adapter import LLAMA_TARGETS, AdapterRejected, BaseSpec, check_adapter
from cortex.chain.commitments import OnChainCommitment
from cortex.hub.local import LocalStore
from cortex.model.pointer import BaseRef
from cortex.protocol.commitment import ModelCommitment
from cortex.protocol.competition import CORTEX_TINY, AdapterLimits
from cortex.protocol.hashing import content_hash
from cortex.wandb_log import WandbConfig
from adapter_builders import save_peft, tiny_config
from cortex.adapter.fetch import AdapterCache, verify

LIMITS = AdapterLimits(("lora", "dora"), 8, LLAMA_TARGETS, max_bytes=1 << 20)
COMPETITION = dataclasses.replace(CORTEX_TINY, adapters=LIMITS)
BASE_REPO = "cortex/tiny-llama"
WEIGHTS = "adapter_model.safetensors"
HOSTILE = {"nan": "non_finite", "pickle": "pickle", "wrong_shape": "shape_mismatch", "huge_norm": "norm_too_large",
           "forged": "hash_mismatch"}  # NaN files under a commitment whose hash is the honest LoRA's


def tiny_base():
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_config()).eval()


def honest(base, folder: Path, seed: int, dora: bool) -> Path:
    """Stock peft output (no task_type) with a small random update, as a miner would publish it."""
    return save_peft(copy.deepcopy(base), folder, seed, task_type=None, use_dora=dora)


def hostile(src: Path, folder: Path, kind: str) -> Path:
    shutil.copytree(src, folder)
    tensors = {k: t.clone() for k, t in load_file(folder / WEIGHTS).items()}
    first_b = next(k for k in sorted(tensors) if "lora_B" in k)
    first_a = next(k for k in sorted(tensors) if "lora_A" in k)
    if kind == "nan":
        tensors[first_b].view(-1)[0] = float("nan")
    elif kind == "wrong_shape":
        tensors[first_a] = tensors[first_a][:, :16].contiguous()
    elif kind == "huge_norm":
        tensors[first_b] = tensors[first_b] * 1e3 + 1.0
    elif kind == "pickle":
        (folder / "adapter_model.bin").write_bytes(b"\x80\x04\x95" + b"\x00" * 64)
    save_file(tensors, folder / WEIGHTS)
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    base = tiny_base()
    base.save_pretrained(root / "base")
    from tokenizers import Tokenizer, models

    Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")).save(str(root / "base" / "tokenizer.json"))
    store = LocalStore(root / "store")
    base_revision = store.upload(BASE_REPO, root / "base", private=False)
    folders = {"lora": honest(base, root / "lora", 1, dora=False), "dora": honest(base, root / "dora", 2, dora=True)}
    for kind in HOSTILE:
        folders[kind] = hostile(folders["lora"], root / kind, "nan" if kind == "forged" else kind)
    choices, records = [], {}
    for uid, (name, folder) in enumerate(folders.items()):
        hotkey, repo = f"hotkey-{name}", f"miner-{name}/cortex-lora"
        revision = store.upload(repo, folder, private=False)
        digest = content_hash(folders["lora"] if name == "forged" else folder)
        commitment = ModelCommitment.for_content(COMPETITION.id, repo, revision, digest, hotkey)
        records[hotkey] = OnChainCommitment(hotkey, uid, 10 + uid, commitment.encode(), commitment)
        choices.append(S.Choice(uid, hotkey, repo, revision, 10 + uid, 1.0))
    return {"root": root, "base": base, "store": store, "base_ref": BaseRef(BASE_REPO, base_revision),
            "folders": folders, "choices": choices, "records": records}


def validator_reason(w, choice: S.Choice, cache: AdapterCache, spec: BaseSpec) -> str | None:
    """What a validator records for this commitment: ``validator.round``'s fetch, verify, check."""
    try:
        fetched = cache.fetch(choice.repo, choice.revision, LIMITS)
        verify(fetched, w["records"][choice.hotkey].commitment, choice.hotkey)
        check_adapter(fetched.path, spec, LIMITS, expected_hash=fetched.content_hash)
    except AdapterRejected as exc:
        return exc.reason
    return None


def test_hostile_adapters_are_refused_with_the_validators_reason_and_the_rest_merged(world, tmp_path):
    w = world
    cfg = AveragerConfig(netuid=1, competition=COMPETITION, state=tmp_path / "averager", progress=False,
                         wandb=WandbConfig(enabled=False))
    averager = Averager(Parts(cfg, None, None, w["store"]))
    adapters, out = averager._fetch(w["choices"], w["records"], w["base_ref"], tmp_path / "adapters")

    got = {c.hotkey.removeprefix("hotkey-"): c.reason for c in out if c.decision != S.KEPT}
    assert got == HOSTILE
    base_dir = averager._base_dir(w["base_ref"])
    cache, spec = AdapterCache(w["store"], tmp_path / "validator-cache"), BaseSpec.from_files(base_dir)
    said = {c.hotkey.removeprefix("hotkey-"): validator_reason(w, c, cache, spec) for c in w["choices"]}
    assert said == {"lora": None, "dora": None, **HOSTILE}  # the same code, from the validator's own path

    kept = [c for c in out if c.decision == S.KEPT]
    assert sorted(c.hotkey for c in kept) == ["hotkey-dora", "hotkey-lora"] and set(adapters) == {c.hotkey for c in kept}
    merged, report = averager._merge(base_dir, [(adapters[c.hotkey], 0.5) for c in kept], tmp_path / "work")
    assert sorted(i.content_hash for i in report.inputs) == sorted(
        content_hash(w["folders"][n]) for n in ("dora", "lora"))

    from peft import PeftModel

    state = {k: v.detach().clone() for k, v in w["base"].state_dict().items()}
    own = [PeftModel.from_pretrained(copy.deepcopy(w["base"]), w["folders"][n]).merge_and_unload().state_dict()
           for n in ("lora", "dora")]
    got = {}
    for shard in merged.glob("*.safetensors"):
        got.update(load_file(shard))
    changed = 0
    for key, value in got.items():  # the weighted average of each adapter's own merged model
        want = state[key] + sum(0.5 * (m[key] - state[key]) for m in own)
        torch.testing.assert_close(value.float(), want.float(), rtol=1e-5, atol=2e-6, msg=key)
        changed += bool((want - state[key]).abs().max() > 1e-4)
    assert changed >= 2 * len(LLAMA_TARGETS)  # the honest updates are really in the merge
    assert json.loads((merged / "config.json").read_text())["num_hidden_layers"] == 2


def test_the_rank_r_delta_is_an_adapter_the_checks_pass(world, tmp_path):
    """The rank-r method folds its own delta through the same checked loader: a plain peft LoRA."""
    from averager.stream import load_rank_r, merge_rank_r
    from cortex.adapter import load_adapter

    w = world
    cfg = AveragerConfig(netuid=1, competition=COMPETITION, state=tmp_path / "averager", progress=False,
                         method="rank-r", rank=2, wandb=WandbConfig(enabled=False))
    averager = Averager(Parts(cfg, None, None, w["store"]))
    base_dir = averager._base_dir(w["base_ref"])
    spec = BaseSpec.from_files(base_dir)
    lora = load_adapter(w["folders"]["lora"], spec, LIMITS)
    q_only = {k: f for k, f in lora.modules.items() if k.endswith("q_proj") and ".0." in k}  # one module of one layer
    partial = dataclasses.replace(lora, modules=q_only)
    merge_rank_r(base_dir, [(partial, 1.0)], tmp_path / "delta", 2, progress=False)
    delta = load_rank_r(tmp_path / "delta", spec, 2)
    assert delta.checked.target_modules == ("q_proj",) and delta.checked.rank == 2
    assert set(delta.modules) == {"model.layers.0.self_attn.q_proj"}
    config = json.loads((tmp_path / "delta" / "adapter_config.json").read_text())
    assert config["layers_to_transform"] == [0]
    merged, report = averager._merge(base_dir, [(lora, 1.0)], tmp_path / "work")
    assert report.rank == 2 and set(report.energy) == set(lora.modules) and report.dtype == cfg.dtype
