"""The averager's streaming merge of a 70B base fits its RAM budget: peak memory from the shard sizes.

A Llama-3.3-70B-shaped model is built on the meta device (shapes, no weights); its tensors are laid
out in 5 GB bf16 shards as a Hub checkpoint is; ``averager.stream.merge_peak_bytes`` bounds the
merge's memory from that layout and the adapters' factor sizes. Eight rank-64 adapters on every
projection, merged into a bf16 base, must fit min_compute.yml's averager minimum for cortex-70b
with room for the Python process; the estimate itself is checked against a hand count.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import yaml

from averager.stream import merge_peak_bytes
from cortex.adapter import LLAMA_TARGETS, TensorInfo
from cortex.model.shards import ShardTensor

ROOT = Path(__file__).resolve().parents[2]
LLAMA_3_3_70B = {"hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80, "num_attention_heads": 64,
                 "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False}
GiB = 2**30


def meta_layout(config: dict, shard_bytes: int = 5 * 10**9) -> dict[str, list[ShardTensor]]:
    """The model's tensors in bf16 shards of at most ``shard_bytes``, with the offsets a header holds."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model("llama", **config), dtype=torch.bfloat16)
    layout: dict[str, list[ShardTensor]] = {}
    shard, used = 1, 0
    for name, p in model.state_dict().items():
        size = p.numel() * 2
        if used and used + size > shard_bytes:
            shard, used = shard + 1, 0
        layout.setdefault(f"model-{shard:05d}.safetensors", []).append(
            ShardTensor(name, TensorInfo("BF16", tuple(p.shape), used, used + size), data_start=8))
        used += size
    return layout


def test_70b_merge_fits_the_averagers_memory():
    layout = meta_layout(LLAMA_3_3_70B)
    infos = [i for items in layout.values() for i in items]
    total = sum(i.end - i.start for i in infos)
    assert 140e9 < total < 142e9 and len(layout) == 30  # 70.6B parameters in bf16; the Hub has 30 shards too
    targeted = {i.name for i in infos if i.name.endswith(".weight") and i.name.split(".")[-2] in LLAMA_TARGETS}
    assert len(targeted) == 80 * 7
    rank, adapters = 64, 8
    factors = sum(rank * (i.shape[0] + i.shape[1]) for i in infos if i.name in targeted)
    adapter_bytes = adapters * factors * 4  # loaded as fp32 factors
    for out_dtype in (torch.bfloat16, torch.float32):
        peak = merge_peak_bytes(layout, adapter_bytes, targeted, out_dtype)
        # the largest step is the embedding (not targeted): read bf16, fp32 master, cast out
        embed = 128256 * 8192
        by_hand = embed * (2 + 4 + torch.empty((), dtype=out_dtype).element_size())
        assert peak == adapter_bytes + by_hand
        budget = yaml.safe_load((ROOT / "min_compute.yml").read_text())["competitions"]["cortex-70b"]["averager"]
        assert peak + 4 * GiB <= budget["memory_gb"]["minimum"] * 10**9, (peak / GiB, out_dtype)
    # a targeted weight costs two more fp32 copies: an MLP projection's step
    gate = next(i for i in infos if i.name.endswith("gate_proj.weight"))
    one = {"x": [gate]}
    n = math.prod(gate.shape)
    assert merge_peak_bytes(one, 0, {gate.name}, torch.bfloat16) == n * (2 + 3 * 4 + 2)
    assert merge_peak_bytes(one, 0, set(), None) == n * (2 + 4 + 2)  # "same": the output in the base's bf16
