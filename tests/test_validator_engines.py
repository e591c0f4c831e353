"""Engines and configuration: the vllm refusal, base specs from files, flags and their defaults."""

import argparse
import sys
from pathlib import Path

import pytest
import torch

from cortex.errors import CortexError
from cortex.adapter import BaseSpec
from validator.config import ValidatorConfig, add_args, from_args
from cortex.eval.engines import require_engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse(*argv: str) -> ValidatorConfig:
    parser = argparse.ArgumentParser()
    add_args(parser)
    return from_args(parser.parse_args(["--netuid", "3", *argv]))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_vllm_stops_with_a_clear_message_before_any_work(tmp_path, capsys):
    with pytest.raises(CortexError, match="needs an NVIDIA GPU.*--engine transformers"):
        require_engine("vllm")
    require_engine("transformers")  # always available
    from neurons.validator import main

    missing_chain = tmp_path / "no-such-chain.db"
    assert main(["--netuid", "1", "--engine", "vllm", "--chain.path", str(missing_chain), "--wandb.off"]) == 2
    err = capsys.readouterr().err
    assert "needs an NVIDIA GPU" in err and "Traceback" not in err
    assert not missing_chain.exists()  # stopped before touching the chain


def test_base_spec_from_files_matches_the_loaded_model(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2))
    model.save_pretrained(tmp_path)
    from_files, from_model = BaseSpec.from_files(tmp_path), BaseSpec.from_model(model)
    assert from_files.modules == from_model.modules and from_files.num_layers == 2
    assert from_files.weight_norms.keys() == from_model.weight_norms.keys()
    for key, (frob, row) in from_model.weight_norms.items():
        assert from_files.weight_norms[key] == pytest.approx((frob, row), rel=1e-6)


def test_offline_and_live_defaults(tmp_path):
    offline = parse("--chain.path", str(tmp_path / "chain.db"), "--wallet.name", "v")
    assert offline.store == f"local:{tmp_path / 'store'}" and offline.clock == "simulated"
    assert offline.competitions == ("cortex-tiny",) and offline.source == "synthetic"
    assert offline.state.name == "state.json" and offline.state.parent.name == "3-v-default"
    assert offline.cache_dir == offline.state.parent / "cache" and offline.wandb
    assert [c.id for c in offline.schedule().competitions] == ["cortex-tiny"]
    live = parse("--subtensor.network", "finney", "--wandb.off", "--engine", "vllm")
    assert (live.store, live.clock, live.source, live.competitions) == ("hf", "calendar", "binance", ("cortex-70b",))
    assert not live.wandb and live.engine == "vllm"


def test_bad_flags_are_one_line_errors(tmp_path):
    with pytest.raises(CortexError, match="weight of the NEW round|new round's weight"):
        parse("--chain.path", "c.db", "--weights.alpha", "0")
    with pytest.raises(CortexError, match="YYYY-MM-DD"):
        parse("--chain.path", "c.db", "--clock.start-day", "March")
    with pytest.raises(CortexError, match="--store local:DIR"):
        parse()
    bad = tmp_path / "comps.yaml"
    bad.write_text("competitions: [{id: x}]\n")
    with pytest.raises(CortexError, match="comps.yaml"):
        parse("--chain.path", "c.db", "--competitions", str(bad)).schedule()


@pytest.mark.slow
def test_wandb_logs_offline_and_never_stops_the_validator(tmp_path):
    from validator.round import WandbLog

    cfg = ValidatorConfig(netuid=1, chain_path="c.db", store="local:s", state=tmp_path / "state.json")
    table = {"round": 1, "sync_block": 20, "competitions": {"c": {"base_model": {"win_rate": 0.0}, "models": [
        {"uid": 1, "hotkey": "h", "repo": "a/b", "revision": "r", "win_rate": 1.0, "mean_reward": 0.5,
         "weight": 1.0, "reason": None}]}}}
    logger = WandbLog(cfg, "5Fhotkey")
    logger.log(table)
    logger.run.finish()
    assert any(p.name.startswith("offline-run-") for p in (tmp_path / "wandb").iterdir())
    broken = WandbLog(cfg, "5Fhotkey")
    broken.log({"round": 2})  # a malformed table: a warning, not an exception
    assert broken.off
