"""min_compute.yml names every built-in competition and every role, with the figures behind them."""

from __future__ import annotations

from pathlib import Path

import yaml

from cortex.protocol.competition import BUILTIN_COMPETITIONS

ROLES = ("miner", "validator", "averager")
SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "min_compute.yml").read_text())


def test_every_builtin_competition_and_role_is_sized():
    assert set(SPEC["competitions"]) == set(BUILTIN_COMPETITIONS)
    for comp, roles in SPEC["competitions"].items():
        for role in ROLES:
            entry = roles[role]
            assert "gpu" in entry, (comp, role)
            for key in ("memory_gb", "disk_gb"):
                low, high = entry[key]["minimum"], entry[key]["recommended"]
                assert 0 < low <= high, (comp, role, key)


def test_the_offline_competition_cites_measurements():
    for role in ROLES:
        assert SPEC["competitions"]["cortex-tiny"][role]["measured"], role


# Llama-3.3-70B-Instruct's config.json (the shape only: nothing is downloaded)
LLAMA_3_3_70B = dict(vocab_size=128256, hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                     num_attention_heads=64, num_key_value_heads=8, max_position_embeddings=131072,
                     rope_theta=500000.0, tie_word_embeddings=False)


def test_the_70b_validator_memory_plan_fits_the_gpus_it_names():
    """Weights (bf16) + KV cache of the eval batch + one adapter + activations, from the model built on the
    meta device, against every GPU set the plan names; the figures written in min_compute.yml match."""
    import torch
    from accelerate import init_empty_weights
    from transformers import LlamaConfig, LlamaForCausalLM

    from cortex.eval.engines import choose_engine
    from cortex.protocol.competition import CORTEX_70B

    entry = SPEC["competitions"]["cortex-70b"]["validator"]
    plan = entry["memory_plan"]
    assert choose_engine("transformers", CORTEX_70B.adapters.types) == "transformers"  # the engine the plan sizes
    config = LlamaConfig(**LLAMA_3_3_70B)
    with init_empty_weights():
        model = LlamaForCausalLM(config)
    assert all(p.device.type == "meta" for p in model.parameters())
    params = sum(p.numel() for p in model.parameters())
    weights = params * 2  # bf16, one copy
    ev, limits = CORTEX_70B.eval, CORTEX_70B.adapters
    assert plan["max_model_len"] >= plan["prompt_tokens"] + ev.max_new_tokens
    head_dim = config.hidden_size // config.num_attention_heads
    kv = 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * 2 * ev.batch_size * plan["max_model_len"]
    adapter = 4 * limits.max_rank * sum(m.in_features + m.out_features for name, m in model.named_modules()
                                        if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in limits.target_modules)
    activations = 2 * ev.batch_size * plan["prompt_tokens"] * config.intermediate_size * 2
    for key, value in (("parameters_b", params / 1e9), ("weights_gb", weights / 1e9), ("kv_cache_gb", kv / 1e9),
                       ("adapter_gb", adapter / 1e9), ("activations_gb", activations / 1e9)):
        assert abs(plan[key] - value) <= 0.02 * value, (key, plan[key], value)
    for gpus in plan["gpus"]:
        need = weights + kv + adapter + activations + gpus["count"] * plan["per_gpu_overhead_gb"] * 1e9
        have = gpus["count"] * gpus["memory_gb"] * 1e9 * plan["usable_fraction"]
        assert need <= have, (gpus, need / 1e9, have / 1e9)
        assert f"{gpus['count']}x {gpus['memory_gb']} GB" in entry["gpu"]["minimum"]
    half = plan["gpus"][0]["count"] // 2 * plan["gpus"][0]["memory_gb"] * 1e9 * plan["usable_fraction"]
    assert weights + kv > half  # the plan is not padded: half the GPUs would not hold it
