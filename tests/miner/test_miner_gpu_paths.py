"""The miner's GPU paths, checked on a CPU as far as a CPU can: what is configured and in what order.

- Unsloth is imported before transformers, TRL or peft when the config chooses it (a fake
  ``unsloth`` module records what was loaded when it is imported);
- QLoRA loads the base in bitsandbytes 4-bit NF4 with double quantisation and bf16 compute, and
  prepares it with ``prepare_model_for_kbit_training``;
- GRPO generates with vLLM colocated when asked, and under ZeRO-3 does not gather the whole model
  onto each GPU to generate;
- the shipped GPU configs load, hit Unsloth's fast path where they choose it, and the accelerate
  configs save a full adapter (ZeRO-3 16-bit gathering, FSDP full state dict).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from miner import backends
from miner.config import ConfigError, TrainConfig, load_config
from miner.grpo import generation_args, under_zero3

ROOT = Path(__file__).resolve().parents[2]

FAKE_UNSLOTH = """
import json, os, sys
loaded = sorted(m for m in ("transformers", "trl", "peft") if m in sys.modules)
with open(os.environ["UNSLOTH_PROBE"], "w") as f:
    json.dump(loaded, f)
raise SystemExit("fake unsloth: stop here")
"""

RUN = """
import sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import miner.backends
miner.backends.has_gpu = lambda: True  # the fake GPU that lets check_backend pass
from neurons.miner import main
main(["--netuid", "1", "--offline", "--base", "unused", "--config", sys.argv[3], "--wandb.off"])
"""


def test_unsloth_is_imported_before_transformers(tmp_path):
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "unsloth.py").write_text(FAKE_UNSLOTH)
    config = tmp_path / "unsloth.yaml"
    config.write_text(yaml.safe_dump({"backend": "unsloth", "finetuning_type": "lora", "lora_dropout": 0.0}))
    probe = tmp_path / "probe.json"
    proc = subprocess.run([sys.executable, "-c", RUN, str(tmp_path / "fake"), str(ROOT), str(config)],
                          env={**os.environ, "UNSLOTH_PROBE": str(probe)}, capture_output=True, text=True, timeout=300)
    assert probe.is_file(), proc.stderr[-2000:]
    assert json.loads(probe.read_text()) == []  # nothing Unsloth patches was loaded before it
    assert "fake unsloth: stop here" in proc.stderr


def test_qlora_is_nf4_double_quantised_bf16_and_prepared_for_kbit(monkeypatch, tmp_path):
    from transformers import AutoModelForCausalLM

    from cortex.model.random_base import build_base

    base = build_base(tmp_path / "base", "llama3", (ROOT / "tests/data/chat_templates/llama3_1.jinja").read_text(),
                      ["a small corpus of words", "and some more words"] * 20)
    q = backends.quantization_config(TrainConfig(finetuning_type="qlora"))
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    assert q.bnb_4bit_compute_dtype == torch.bfloat16
    assert not backends.quantization_config(TrainConfig(finetuning_type="qlora", double_quantization=False)
                                            ).bnb_4bit_use_double_quant
    seen, prepared = {}, []
    real = AutoModelForCausalLM.from_pretrained

    def fake_load(path, **kwargs):  # bitsandbytes needs a GPU: record the request, load plainly
        seen.update(kwargs)
        return real(path, dtype=torch.float32)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", fake_load)
    monkeypatch.setattr("peft.prepare_model_for_kbit_training",
                        lambda model, use_gradient_checkpointing: prepared.append(use_gradient_checkpointing) or model)
    model, tokenizer, lora = backends.load_for_training(
        TrainConfig(finetuning_type="qlora", gradient_checkpointing=True), base, ["q_proj", "v_proj"])
    assert seen["quantization_config"].bnb_4bit_quant_type == "nf4" and seen["dtype"] == torch.bfloat16
    assert prepared == [True] and not lora.use_dora and tokenizer.pad_token == tokenizer.eos_token


def test_grpo_generation_vllm_colocated_and_zero3_without_gathering(monkeypatch):
    assert generation_args(TrainConfig(grpo_use_vllm=True, grpo_vllm_gpu_memory_utilization=0.4), zero3=True) == {
        "use_vllm": True, "vllm_mode": "colocate", "vllm_gpu_memory_utilization": 0.4}
    assert generation_args(TrainConfig(), zero3=True) == {"use_vllm": False, "ds3_gather_for_generation": False}
    assert generation_args(TrainConfig(), zero3=False)["ds3_gather_for_generation"]
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    assert under_zero3()
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")
    assert not under_zero3()


def test_vllm_and_unsloth_need_a_gpu_and_say_so(monkeypatch):
    monkeypatch.setattr(backends, "has_gpu", lambda: False)
    with pytest.raises(backends.BackendUnavailable, match="grpo_use_vllm: true needs an NVIDIA GPU"):
        backends.check_backend(TrainConfig(stage=("sft", "grpo"), grpo_use_vllm=True))
    backends.check_backend(TrainConfig(stage=("sft",), grpo_use_vllm=True))  # no GRPO stage: nothing to generate
    with pytest.raises(backends.BackendUnavailable, match="backend: unsloth needs an NVIDIA GPU"):
        backends.check_backend(TrainConfig(backend="unsloth", finetuning_type="lora"))


def test_gpu_configs_load_and_target_their_paths():
    unsloth = load_config(ROOT / "configs/gpu-8b-unsloth.yaml")
    assert unsloth.backend == "unsloth" and unsloth.finetuning_type == "lora" and unsloth.lora_dropout == 0.0
    qlora = load_config(ROOT / "configs/gpu-8b-qlora.yaml")
    assert qlora.finetuning_type == "qlora" and qlora.double_quantization and qlora.bf16
    big = load_config(ROOT / "configs/multi-gpu-70b.yaml")
    assert big.bf16 and "grpo" in big.stage
    for path in (ROOT / "configs").glob("*.yaml"):
        load_config(path)  # every shipped training config is valid
    for name in ("gpu-8b-qlora.yaml", "gpu-8b-unsloth.yaml"):
        assert "--competition cortex-8b" in (ROOT / "configs" / name).read_text()
    zero3 = yaml.safe_load((ROOT / "configs/accelerate/zero3.yaml").read_text())["deepspeed_config"]
    assert zero3["zero_stage"] == 3 and zero3["zero3_save_16bit_model"] is True  # stage3_gather_16bit_weights_on_model_save
    fsdp = yaml.safe_load((ROOT / "configs/accelerate/fsdp.yaml").read_text())["fsdp_config"]
    assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"


def test_heldout_device_reaches_the_base_loader(monkeypatch, tmp_path):
    from cortex.protocol.competition import CORTEX_TINY
    from miner import heldout

    seen = {}

    def fake_load(path, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop before loading")

    monkeypatch.setattr(heldout.Generator, "load", fake_load)
    with pytest.raises(RuntimeError, match="stop before loading"):
        heldout.score_heldout(tmp_path, {"base": None}, [{"prompt": []}], CORTEX_TINY, device="cuda:1")
    assert seen["device"] == "cuda:1"
    assert TrainConfig().heldout_device == "auto" and TrainConfig(heldout_device="cuda:0").heldout_device == "cuda:0"
    with pytest.raises(ConfigError, match="heldout_device: expected auto, cpu, cuda or cuda:N"):
        TrainConfig(heldout_device="gpu")


def test_training_dtype_follows_the_one_rule(monkeypatch):
    """The trainers load the base by cortex.eval.base.default_dtype's rule; bf16: false keeps float32."""
    from cortex.eval.base import default_dtype

    assert backends.train_dtype(TrainConfig()) == default_dtype("cpu") == torch.float32
    assert backends.train_dtype(TrainConfig(bf16=True)) == torch.float32  # no GPU: float32, with a warning
    monkeypatch.setattr(backends, "has_gpu", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert backends.train_dtype(TrainConfig()) == torch.float16 and not backends.use_bf16(TrainConfig())
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert backends.train_dtype(TrainConfig()) == torch.bfloat16 and backends.use_bf16(TrainConfig())
    assert backends.train_dtype(TrainConfig(bf16=False)) == torch.float32
