"""Every competition limit is checked against the training config before any work (issue 20): a rank,
a target module, an adapter type or a size the competition refuses stops the miner in one line, before
data is built or a model loaded; an adapter it continues is held to the same limits."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
from transformers import LlamaConfig

from cortex.protocol.competition import CORTEX_TINY, AdapterLimits
from miner.config import TrainConfig
from miner.limits import LimitExceeded, check_planned, check_size, planned_config

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from neurons.miner import main  # noqa: E402

LORA_ONLY = dataclasses.replace(CORTEX_TINY, adapters=dataclasses.replace(CORTEX_TINY.adapters, types=("lora",)))


def limited(**changes) -> object:
    return dataclasses.replace(CORTEX_TINY, adapters=dataclasses.replace(CORTEX_TINY.adapters, **changes))


def test_an_adapter_within_the_limits_passes_and_names_its_targets():
    targets = check_planned(TrainConfig(lora_rank=8, lora_target=("q_proj", "v_proj")), CORTEX_TINY)
    assert targets == ["q_proj", "v_proj"]
    written = planned_config(TrainConfig(lora_rank=8), targets)
    assert written["r"] == 8 and written["use_dora"] is True and sorted(written["target_modules"]) == targets


@pytest.mark.parametrize("cfg, comp, words", [
    (TrainConfig(lora_rank=64), CORTEX_TINY, ["rank_over_limit", "rank 64 > 8", "change lora_rank"]),
    (TrainConfig(finetuning_type="dora"), LORA_ONLY, ["finetuning_type: dora", "allows only lora"]),
    (TrainConfig(lora_target=("q_proj", "v_proj")), limited(target_modules=("q_proj",)),
     ["lora_target", "v_proj", "not allowed"]),
])
def test_each_limit_is_refused_in_one_line(cfg, comp, words):
    with pytest.raises(Exception) as caught:
        check_planned(cfg, comp)
    message = str(caught.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_qlora_is_held_to_the_lora_type():
    assert check_planned(TrainConfig(finetuning_type="qlora"), LORA_ONLY)  # a LoRA adapter on a 4-bit base
    with pytest.raises(LimitExceeded, match="qlora makes a lora adapter"):
        check_planned(TrainConfig(finetuning_type="qlora"), limited(types=("dora",)))


def test_a_continued_adapter_is_checked_too(tmp_path):
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps(planned_config(TrainConfig(lora_rank=32), ["q_proj"])))
    with pytest.raises(LimitExceeded, match=r"adapter_name_or_path .*rank 32 > 8"):
        check_planned(TrainConfig(adapter_name_or_path=str(folder)), CORTEX_TINY)
    (folder / "adapter_config.json").write_text(json.dumps(planned_config(TrainConfig(lora_rank=4), ["q_proj"])))
    assert check_planned(TrainConfig(adapter_name_or_path=str(folder)), CORTEX_TINY)


def test_max_bytes_is_checked_from_the_base_config_alone(tmp_path):
    config = LlamaConfig(vocab_size=64, hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2)
    config.save_pretrained(tmp_path)  # no weights: nothing is loaded
    cfg = TrainConfig(lora_rank=8)
    # the estimate covers what peft really writes for this config
    from peft import get_peft_model
    from transformers import LlamaForCausalLM

    from miner.backends import lora_config
    from miner.limits import HEADROOM, planned_bytes
    from cortex.adapter import BaseSpec

    targets = check_planned(cfg, CORTEX_TINY)
    get_peft_model(LlamaForCausalLM(config), lora_config(cfg, targets)).save_pretrained(tmp_path / "real")
    real = sum(p.stat().st_size for p in (tmp_path / "real").iterdir())
    planned = planned_bytes(cfg, targets, BaseSpec.from_config(config))
    assert planned - HEADROOM <= real <= planned
    check_size(cfg, limited(max_bytes=1 << 20), tmp_path)  # 7 modules x 4 layers at rank 8: about 0.6 MB
    with pytest.raises(LimitExceeded, match="over competition cortex-tiny's max_bytes 524288"):
        check_size(cfg, limited(max_bytes=512 << 10), tmp_path)


def test_the_miner_refuses_before_any_work(tmp_path, capsys):
    config = tmp_path / "rank64.yaml"
    config.write_text("lora_rank: 64\n")
    out = tmp_path / "run"
    status = main(["--netuid", "1", "--offline", "--base", str(tmp_path / "no-base-needed"), "--config", str(config),
                   "--output-dir", str(out), "--wandb.off"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and "rank 64 > 8" in err and "Traceback" not in err
    assert not out.exists()  # no data built, no model loaded, nothing written
