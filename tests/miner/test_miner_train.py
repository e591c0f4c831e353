"""The miner end to end on a small bootstrapped base and synthetic data (slow).

- on the embedded chain and a local store: the owner commits the base pointer, the miner follows it
  and trains a DoRA adapter (validation loss goes down). The held-out gate publishes it exactly when
  it beats the base (which way it goes depends on training; tests/miner/test_miner_heldout.py tests the gate
  with adapters of known quality); ``--push-only --force`` then publishes it (or finds it already
  committed), the commitment decodes and verifies, the stock ``PeftModel.from_pretrained`` loads the
  adapter on the base, and pushing again commits nothing new.
- GRPO after SFT logs its mean reward; KTO trains on labelled teacher traces; ``--resume`` continues;
- ``accelerate launch`` with two CPU processes (gloo) trains and saves one adapter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from chainkit import NETUID, make_chain

from cortex.chain.commitments import publish, read_all
from cortex.hub.local import LocalStore
from cortex.model.bootstrap import BootstrapConfig, bootstrap
from cortex.model.bootstrap import publish as publish_base
from cortex.model.tiny import TINY_REPO, TinyConfig
from cortex.protocol.commitment import ModelCommitment
from cortex.protocol.hashing import content_hash

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from neurons.miner import main

SMALL = TinyConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                   intermediate_size=176, max_position_embeddings=1024)
TRAIN = {"finetuning_type": "dora", "lora_rank": 8, "learning_rate": 3.0e-3, "max_steps": 12,
         "per_device_train_batch_size": 4, "eval_steps": 4, "save_steps": 4, "logging_steps": 2, "val_size": 12,
         "heldout_samples": 4, "heldout_max_new_tokens": 48, "cutoff_len": 768, "seed": 1}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A small, briefly pre-trained base and a synthetic dataset."""
    root = tmp_path_factory.mktemp("miner")
    base = root / "base"
    bootstrap(BootstrapConfig(out=base, steps=16, batch_size=8, learning_rate=1e-2, start="2024-03-01", stride=3,
                              vocab_size=1024, eval_prompts=1, max_new_tokens=8, model=SMALL, progress=False))
    from cortex.data.dataset import BuildConfig, build_dataset

    build_dataset(BuildConfig(source="synthetic", start="2024-03-01", stride=3, min_reward=None,
                              out=str(root / "data"), progress=False))
    old = {k: os.environ.get(k) for k in ("CORTEX_CACHE", "CORTEX_PROGRESS")}
    os.environ.update(CORTEX_CACHE=str(root / "cache"), CORTEX_PROGRESS="0")
    yield root, base
    for k, v in old.items():
        os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def config(root: Path, name: str, **keys) -> Path:
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**TRAIN, "dataset": str(root / "data"), **keys}))
    return path


def test_embedded_chain_end_to_end(env, tmp_path):
    root, base = env
    c = make_chain(tmp_path, tempo=50)
    owner, miner = c.register("owner"), c.register("miner")
    store_dir = tmp_path / "store"
    revision = publish_base(base, f"local:{store_dir}")
    publish(c.sub, owner, NETUID, ModelCommitment.for_content("cortex-tiny", TINY_REPO, revision, revision,
                                                              owner.hotkey.ss58_address, kind="base"))
    out = tmp_path / "run"
    args = ["--netuid", str(NETUID), "--wallet.name", "miner", "--wallet.path", str(c.wallet_path),
            "--subtensor.network", "embedded", "--chain.path", str(c.path), "--competition", "cortex-tiny",
            "--config", str(config(root, "e2e")), "--output-dir", str(out), "--store", f"local:{store_dir}",
            "--wandb.off"]
    assert main(args) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["base"] == f"{TINY_REPO}@{revision}"  # followed the owner's pointer
    assert m["eval_loss_best"] < m["eval_loss_initial"] == m["stages"]["sft"]["eval_loss_curve"][0][1]
    assert m["stages"]["sft"]["eval_loss_curve"][0][0] == 0 and len(m["stages"]["sft"]["eval_loss_curve"]) == 4
    assert m["adapter_check"] == "ok" and m["adapter_type"] == "dora" and (out / "training_loss.png").is_file()
    # the gate decides by the held-out numbers, whichever way training went
    beats = m["heldout_reward_adapter"] > m["heldout_reward_base"]
    assert m["publish_decision"] == beats
    store = LocalStore(store_dir)
    if beats:
        assert "beats the base" in m["publish_reason"] and m["published"] and not m["already_published"]
    else:
        assert "does not beat the base" in m["publish_reason"] and m["published"] is None
        assert not (store_dir / "miner").exists()
    # --push-only --force publishes the finished run: private upload, commit, read back, public
    assert main(args + ["--push-only", str(out), "--force", "--output-dir", str(tmp_path / "push")]) == 0
    pushed = json.loads((tmp_path / "push" / "metrics.json").read_text())
    if beats:  # the first run published it: the one "already committed" check finds it
        assert pushed["already_published"] and pushed["publish_reason"] == "already committed by this hotkey"
    else:
        assert pushed["publish_reason"].startswith("forced") and not pushed["already_published"]
    assert pushed["heldout_reward_adapter"] == m["heldout_reward_adapter"]  # reused: same base
    records = {r.hotkey: r for r in read_all(c.sub, NETUID)}
    mine = records[miner.hotkey.ss58_address].commitment
    assert mine.encode() == pushed["commitment"] and mine.kind == "adapter" and mine.competition_id == "cortex-tiny"
    fetched = store.download(mine.repo_id, mine.revision, tmp_path / "fetched",
                             allow=["adapter_config.json", "adapter_model.safetensors", "README.md"], max_bytes=1 << 24)
    assert mine.verify(content_hash(fetched), miner.hotkey.ss58_address) and not store.is_private(mine.repo_id)
    card = (fetched / "README.md").read_text()
    assert f"{TINY_REPO}@{revision}" in card and "cortex-tiny" in card and "SYNTHETIC" in card
    # the stock peft loader opens the local adapter (its config names the base folder) and the published one
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    local_cfg = json.loads((out / "adapter" / "adapter_config.json").read_text())
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(local_cfg["base_model_name_or_path"]),
                                      str(out / "adapter"))
    assert model.peft_config["default"].use_dora
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(fetched))
    # idempotent: pushing the same run again sends no second commitment
    assert main(args + ["--push-only", str(out), "--force", "--output-dir", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["already_published"] and again["commitment"] == pushed["commitment"]
    with c.chain.chain.read() as s:
        sent = s.conn.execute("SELECT COUNT(*) FROM extrinsics WHERE function='set_commitment'").fetchone()[0]
    assert sent == 2  # the owner's pointer and the miner's adapter, once each


def test_grpo_after_sft_logs_mean_reward(env, tmp_path):
    root, base = env
    cfg = config(root, "grpo", stage=["sft", "grpo"], max_steps=4, eval_steps=4, save_steps=4, grpo_max_steps=2,
                 num_generations=2, grpo_prompts_per_step=2, max_completion_length=48, heldout_samples=2,
                 heldout_max_new_tokens=16)
    out = tmp_path / "run"
    assert main(["--netuid", "1", "--offline", "--base", str(base), "--config", str(cfg), "--output-dir", str(out),
                 "--wandb.off"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["stages"]["grpo"]["global_step"] == 2 and len(m["stages"]["grpo"]["reward_curve"]) >= 1
    assert -1.0 <= m["stages"]["grpo"]["reward_mean"] <= 2.0 and m["stages"]["grpo"]["learning_rate"] == 3e-6
    assert "heldout_reward_adapter" in m and "offline" in m["publish_reason"]


def test_kto_and_resume(env, tmp_path):
    root, base = env
    out = tmp_path / "run"
    common = ["--netuid", "1", "--offline", "--base", str(base), "--output-dir", str(out), "--wandb.off"]
    cfg = config(root, "kto", stage=["kto"], kto_max_steps=2, kto_reward_threshold=0.9, heldout_samples=1,
                 heldout_max_new_tokens=8, save_steps=1, eval_steps=1)
    assert main(common + ["--config", str(cfg)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["stages"]["kto"]["global_step"] == 2 and m["stages"]["kto"]["desirable"] > 0 and m["stages"]["kto"]["undesirable"] > 0
    # --resume continues from the newest checkpoint (step 2) up to the new max
    cfg = config(root, "kto3", stage=["kto"], kto_max_steps=3, kto_reward_threshold=0.9, heldout_samples=1,
                 heldout_max_new_tokens=8, save_steps=1, eval_steps=1)
    assert main(common + ["--config", str(cfg), "--resume"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["stages"]["kto"]["global_step"] == 3


def test_accelerate_two_cpu_processes(env, tmp_path):
    root, base = env
    cfg = config(root, "ddp", max_steps=4, eval_steps=2, save_steps=2, heldout_samples=1, heldout_max_new_tokens=8,
                 max_samples=64)
    out = tmp_path / "run"
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--config_file", str(ROOT / "configs/accelerate/cpu-2proc.yaml"),
           "--main_process_port", "29517", str(ROOT / "neurons/miner.py"), "--netuid", "1", "--offline",
           "--base", str(base), "--config", str(cfg), "--output-dir", str(out), "--wandb.off"]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["processes"] == 2 and m["stages"]["sft"]["global_step"] == 4
    assert sorted(p.name for p in (out / "adapter").iterdir()) == ["README.md", "adapter_config.json",
                                                                   "adapter_model.safetensors"]
