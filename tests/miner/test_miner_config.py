"""The training YAML: LLaMA-Factory keys, strict checking, clear messages; GPU-only backends stop early."""

from __future__ import annotations

from pathlib import Path

import pytest

from cortex.protocol.competition import CORTEX_TINY
from miner.backends import BackendUnavailable, check_backend, has_gpu
from miner.config import ConfigError, TrainConfig, from_dict, load_config
from miner.heldout import decide

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["tiny-cpu.yaml", "gpu-8b-qlora.yaml", "multi-gpu-70b.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.stage[0] == "sft" and cfg.lora_rank >= 1
    assert set(cfg.targets()) <= set(CORTEX_TINY.adapters.target_modules)


def test_tiny_config_fits_the_tiny_competition():
    cfg = load_config(ROOT / "configs" / "tiny-cpu.yaml")
    assert cfg.finetuning_type in CORTEX_TINY.adapters.types and cfg.lora_rank <= CORTEX_TINY.adapters.max_rank
    assert cfg.targets(CORTEX_TINY.adapters.target_modules) == list(CORTEX_TINY.adapters.target_modules)


def test_values_are_read_the_way_people_write_them(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("stage: [sft, grpo]\nlearning_rate: 2e-4\nlora_target: q_proj,v_proj\nhorizons: 7\n")
    cfg = load_config(path)
    assert cfg.stage == ("sft", "grpo") and cfg.learning_rate == 2e-4  # YAML 1.1 reads 2e-4 as a string
    assert cfg.lora_target == ("q_proj", "v_proj") and cfg.horizons == (7,)
    assert cfg.alpha == 2 * cfg.lora_rank and cfg.use_dora


def test_unknown_keys_name_the_closest_known_one():
    with pytest.raises(ConfigError) as err:
        from_dict({"lora_ranc": 8, "learnig_rate": 1e-4, "zzz": 1}, "c.yaml")
    text = str(err.value)
    assert text.startswith("c.yaml: ")
    assert "unknown key 'lora_ranc' (did you mean 'lora_rank'?)" in text
    assert "did you mean 'learning_rate'?" in text and "unknown key 'zzz'" in text


@pytest.mark.parametrize("data, message", [
    ({"finetuning_type": "ia3"}, "finetuning_type: expected one of dora, lora, qlora"),
    ({"stage": "ppo"}, "stage: expected sft, grpo, kto or calibrate"),
    ({"stage": ["grpo", "sft"]}, "sft comes first"),
    ({"lora_rank": 0}, "lora_rank: expected an integer >= 1"),
    ({"lora_rank": "eight"}, "lora_rank: expected an integer, got 'eight'"),
    ({"lora_dropout": 1.5}, "lora_dropout: expected a number in [0, 1)"),
    ({"lr_scheduler_type": "cosin"}, "lr_scheduler_type: expected one of"),
    ({"lora_target": ["embed_tokens"]}, "lora_target: expected 'all' or names among"),
    ({"save_steps": 30, "eval_steps": 20}, "must be a multiple of eval_steps"),
    ({"num_generations": 1}, "GRPO compares at least 2"),
    ({"template": "llama3"}, "template: not supported: the base's own chat template"),
    ({"deepspeed": "ds.json"}, "accelerate launch --config_file configs/accelerate/zero3.yaml"),
    ({"plot_loss": "yes"}, "plot_loss: expected true or false"),
])
def test_bad_values_are_named(data, message):
    with pytest.raises(ConfigError, match=None) as err:
        from_dict(data)
    assert message in str(err.value)


def test_targets_outside_the_competition_are_refused():
    from cortex.protocol.competition import AdapterLimits

    limits = AdapterLimits(("lora",), 8, ("q_proj", "v_proj"), 1 << 20)
    assert TrainConfig().targets(limits.target_modules) == ["q_proj", "v_proj"]
    with pytest.raises(ConfigError, match="not allowed by the competition"):
        TrainConfig(lora_target=("o_proj",)).targets(limits.target_modules)


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the training config"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("stage: [sft\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    assert load_config(None) == TrainConfig()


def test_docs_list_every_key():
    import dataclasses

    docs = (ROOT / "docs" / "miner.md").read_text()
    assert [f.name for f in dataclasses.fields(TrainConfig) if f"`{f.name}`" not in docs] == []


@pytest.mark.skipif(has_gpu(), reason="checks the no-GPU message")
@pytest.mark.parametrize("data", [{"finetuning_type": "qlora"}, {"backend": "unsloth"}])
def test_gpu_only_backends_stop_before_any_work(data, tmp_path):
    with pytest.raises(BackendUnavailable, match="needs an NVIDIA GPU and none is visible"):
        check_backend(from_dict(data))
    # through the entry point: exit status 2, one line, and nothing built in the output dir
    import sys

    sys.path.insert(0, str(ROOT))
    from neurons.miner import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("".join(f"{k}: {v}\n" for k, v in data.items()))
    out = tmp_path / "out"
    assert main(["--netuid", "1", "--offline", "--config", str(cfg), "--output-dir", str(out), "--wandb.off"]) == 2
    assert not out.exists()


def test_publish_gate():
    assert decide({"heldout_reward_adapter": 0.5, "heldout_reward_base": 0.4}).publish
    lost = decide({"heldout_reward_adapter": 0.5, "heldout_reward_base": 0.4, "heldout_reward_previous": 0.6})
    assert not lost.publish and "last published adapter's 0.6000" in lost.reason
    tie = decide({"heldout_reward_adapter": -1.0, "heldout_reward_base": -1.0})
    assert not tie.publish and "does not beat the base" in tie.reason
    forced = decide({"heldout_reward_adapter": -1.0, "heldout_reward_base": -1.0}, force=True)
    assert forced.publish and forced.reason.startswith("forced")
    assert not decide({"heldout_reward_adapter": None, "heldout_failure_adapter": "time_budget"}).publish
