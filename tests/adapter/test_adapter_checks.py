"""Adapter checks: real peft LoRA/DoRA adapters of a tiny Llama pass; every kind of bad one is
rejected with its reason code; random bytes never escape as anything but AdapterRejected."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import tempfile
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from cortex.adapter import (
    ALLOWED_CONFIG_KEYS,
    LLAMA_TARGETS,
    REASONS,
    AdapterRejected,
    BaseSpec,
    HeaderError,
    NormBounds,
    check_adapter,
    parse_header,
)
from cortex.errors import CortexError
from cortex.protocol.competition import AdapterLimits
from cortex.protocol.hashing import content_hash

from adapter_builders import save_peft, tiny_config

LIMITS = AdapterLimits(("dora", "lora"), 8, LLAMA_TARGETS, max_bytes=1 << 20)
CONFIG, WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
Q_A = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
Q_B = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"
Q_M = "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector"


@pytest.fixture(scope="module")
def base_model():
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_config()).eval()


@pytest.fixture(scope="module")
def made(tmp_path_factory, base_model):
    """Honest adapters, saved once per module; tests work on copies."""
    import copy

    root = tmp_path_factory.mktemp("adapters")
    return {
        "lora": save_peft(copy.deepcopy(base_model), root / "lora"),
        "dora": save_peft(copy.deepcopy(base_model), root / "dora", use_dora=True),
        "r16": save_peft(copy.deepcopy(base_model), root / "r16", r=16),
        "head": save_peft(copy.deepcopy(base_model), root / "head", modules_to_save=["lm_head"]),
    }


@pytest.fixture(scope="module")
def spec(base_model):
    return BaseSpec.from_model(base_model)


def copy_of(made, kind: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(made[kind], tmp_path / kind))


@pytest.fixture
def lora(made, tmp_path):
    return copy_of(made, "lora", tmp_path)


@pytest.fixture
def dora(made, tmp_path):
    return copy_of(made, "dora", tmp_path)


def edit_config(folder: Path, **changes) -> Path:
    cfg = json.loads((folder / CONFIG).read_text())
    cfg.update(changes)
    (folder / CONFIG).write_text(json.dumps(cfg))
    return folder


def edit_tensors(folder: Path, change) -> Path:
    tensors = {name: t.clone() for name, t in load_file(folder / WEIGHTS).items()}  # not the mmap
    change(tensors)
    save_file(tensors, folder / WEIGHTS)
    return folder


def write_raw(path: Path, header: dict | bytes, data: bytes = b"", length: int | None = None) -> None:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)


def rejected(folder: Path, spec: BaseSpec, limits: AdapterLimits = LIMITS, **kw) -> str:
    with pytest.raises(AdapterRejected) as info:
        check_adapter(folder, spec, limits, **kw)
    assert isinstance(info.value, CortexError) and info.value.reason in str(info.value)
    assert info.value.reason in REASONS  # every code is a documented, stable one
    return info.value.reason


# --- honest adapters ------------------------------------------------------------------------------


def test_base_spec_from_config_matches_the_real_model(base_model):
    spec = BaseSpec.from_config(tiny_config())
    assert spec.num_layers == 2 and spec.weight_norms is None
    for name, (parent, fan_in, fan_out) in spec.modules.items():
        weight = base_model.get_submodule(f"model.layers.1.{parent}.{name}").weight
        assert tuple(weight.shape) == (fan_out, fan_in)


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
    shapes = BaseSpec.from_files(tmp_path, norms=False)  # the config only
    assert shapes.weight_norms is None and shapes.modules == from_model.modules


def test_base_spec_knows_each_architecture_by_model_type():
    from transformers import GPT2Config, MistralConfig, Qwen2Config

    llama = BaseSpec.from_config(tiny_config())
    shape = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=8)
    for config in (MistralConfig(**shape), Qwen2Config(**shape)):
        spec = BaseSpec.from_config(config)
        assert spec.modules == llama.modules and set(spec.modules) == set(LLAMA_TARGETS)
    with pytest.raises(CortexError, match="'gpt2' is not supported"):
        BaseSpec.from_config(GPT2Config(n_layer=2, n_embd=32, n_head=4))


@pytest.mark.parametrize("kind", ["lora", "dora"])
def test_honest_peft_adapters_pass_and_load(made, spec, kind, base_model):
    from peft import PeftModel

    folder = made[kind]
    for base in (spec, BaseSpec.from_config(tiny_config())):  # relative and absolute norm bounds
        checked = check_adapter(folder, base, LIMITS, expected_hash=content_hash(folder))
        assert checked.adapter_type == kind and checked.rank == 4
        assert checked.target_modules == tuple(sorted(LLAMA_TARGETS))
        assert checked.content_hash == content_hash(folder)
        assert checked.files == ("README.md", CONFIG, WEIGHTS) and checked.dtypes == ("F32",)
        assert checked.n_bytes == sum(p.stat().st_size for p in folder.iterdir())
        assert checked.n_params == sum(t.numel() for t in load_file(folder / WEIGHTS).values())
        assert len(checked.delta_norms) == 2 * 7 and all(v > 0 for v in checked.delta_norms.values())
    import copy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = PeftModel.from_pretrained(copy.deepcopy(base_model), folder)  # what passes, loads
    if kind == "lora":  # the cheap norm is the norm of peft's own delta weight
        layer = loaded.base_model.model.model.layers[1].mlp.down_proj
        delta = float(layer.get_delta_weight("default").norm())
        assert checked.delta_norms["layers.1.down_proj"] == pytest.approx(delta, rel=1e-5)


def test_half_precision_and_rank_pattern_pass(lora, spec):
    edit_tensors(lora, lambda t: t.update({k: v.to(torch.bfloat16) for k, v in t.items()}))
    assert check_adapter(lora, spec, LIMITS).dtypes == ("BF16",)
    edit_config(lora, rank_pattern={"q_proj": 2})
    assert rejected(lora, spec) == "rank_mismatch"
    edit_tensors(lora, lambda t: t.update({Q_A: t[Q_A][:2].clone(), Q_B: t[Q_B][:, :2].contiguous()}))
    edit_tensors(lora, lambda t: t.update({
        k.replace("layers.0", "layers.1"): v.clone() for k, v in t.items() if "layers.0.self_attn.q_proj" in k
    }))
    assert check_adapter(lora, spec, LIMITS).rank == 4


def test_patterns_layers_and_rslora_match_peft(base_model, spec, tmp_path):
    """rank_pattern, alpha_pattern, layers_to_transform and rsLoRA as peft itself applies them."""
    import copy

    from peft import PeftModel

    folder = save_peft(copy.deepcopy(base_model), tmp_path / "p", r=4, lora_alpha=6, use_rslora=True,
                       target_modules=["q_proj", "down_proj"], layers_to_transform=[1],
                       rank_pattern={"q_proj": 2}, alpha_pattern={"layers.1.mlp.down_proj": 3})
    checked = check_adapter(folder, spec, LIMITS)
    assert set(checked.delta_norms) == {"layers.1.q_proj", "layers.1.down_proj"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = PeftModel.from_pretrained(copy.deepcopy(base_model), folder)
    layers = loaded.base_model.model.model.layers
    for key, layer in (("layers.1.q_proj", layers[1].self_attn.q_proj),
                       ("layers.1.down_proj", layers[1].mlp.down_proj)):
        delta = float(layer.get_delta_weight("default").norm())
        assert checked.delta_norms[key] == pytest.approx(delta, rel=1e-5)
    assert rejected(edit_config(folder, layers_to_transform=[0]), spec) == "unexpected_tensor"


def test_config_allow_list_covers_what_peft_writes(made):
    for kind in made:
        assert set(json.loads((made[kind] / CONFIG).read_text())) <= ALLOWED_CONFIG_KEYS


# --- files ----------------------------------------------------------------------------------------


def test_pickle_files_are_rejected(lora, spec):
    with open(lora / "adapter_model.bin", "wb") as handle:
        pickle.dump({Q_A: [1.0, 2.0]}, handle)
    assert rejected(lora, spec) == "pickle"
    (lora / "adapter_model.bin").unlink()
    torch.save({"w": torch.zeros(2)}, lora / "weights.pt")
    assert rejected(lora, spec) == "pickle"
    (lora / "weights.pt").unlink()
    torch.save({"w": torch.ones(3)}, lora / WEIGHTS)  # a torch.save archive under the right name
    assert rejected(lora, spec) == "pickle"
    (lora / WEIGHTS).write_bytes(pickle.dumps({"a": 1}, protocol=4))
    assert rejected(lora, spec) == "pickle"


@pytest.mark.parametrize("name", ["tokenizer.json", "config.json", "model.safetensors", ".gitattributes"])
def test_extra_files_are_rejected(lora, spec, name):
    (lora / name).write_text("{}")
    assert rejected(lora, spec) == "extra_files"


def test_folders_and_links_are_rejected(lora, spec, tmp_path):
    (lora / "sub").mkdir()
    assert rejected(lora, spec) == "extra_files"
    (lora / "sub").rmdir()
    (lora / "README.md").unlink()
    (lora / "README.md").symlink_to("/etc/passwd")
    assert rejected(lora, spec) == "not_regular_file"


def test_huge_sparse_file_is_rejected_before_reading(lora, spec):
    os.truncate(lora / WEIGHTS, LIMITS.max_bytes + 1)
    assert rejected(lora, spec) == "too_large"
    os.truncate(lora / WEIGHTS, 1 << 40)  # a terabyte of holes: only its size is looked at
    assert rejected(lora, spec) == "too_large"


def test_missing_files_are_rejected(lora, spec, tmp_path):
    (lora / CONFIG).unlink()
    assert rejected(lora, spec) == "missing_config"
    assert rejected(tmp_path / "nowhere", spec) == "missing_config"
    (lora / CONFIG).write_text("{}")
    (lora / WEIGHTS).unlink()
    assert rejected(lora, spec) == "missing_weights"


def test_hash_mismatch(lora, spec):
    good = content_hash(lora)
    assert check_adapter(lora, spec, LIMITS, expected_hash=good.upper()).content_hash == good
    assert rejected(lora, spec, expected_hash="0" * 64) == "hash_mismatch"
    (lora / "README.md").write_text("edited card")
    assert rejected(lora, spec, expected_hash=good) == "hash_mismatch"


# --- adapter_config.json --------------------------------------------------------------------------


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_stock_peft_output_without_task_type_passes(base_model, spec, tmp_path, dora):
    """Plain ``PeftModel.save_pretrained`` with no task_type records an auto_mapping naming the
    transformers class; that is stock peft output and passes."""
    import copy

    folder = save_peft(copy.deepcopy(base_model), tmp_path / "plain", task_type=None, use_dora=dora)
    config = json.loads((folder / CONFIG).read_text())
    assert config["task_type"] is None
    assert config["auto_mapping"] == {"base_model_class": "LlamaForCausalLM",
                                      "parent_library": "transformers.models.llama.modeling_llama"}
    checked = check_adapter(folder, spec, LIMITS)
    assert checked.adapter_type == ("dora" if dora else "lora")


@pytest.mark.parametrize("mapping", [
    {"base_model_class": "LlamaForCausalLM", "parent_library": "evil.models"},
    {"base_model_class": "LlamaForCausalLM", "parent_library": "transformers_evil.models"},
    {"base_model_class": "LlamaForCausalLM", "parent_library": "os"},
    {"base_model_class": "os.system", "parent_library": "transformers"},
    {"base_model_class": "LlamaForCausalLM", "parent_library": "transformers", "extra": "x"},
    {"base_model_class": "LlamaForCausalLM"},
    {"parent_library": "transformers.models.llama.modeling_llama"},
    "transformers.LlamaForCausalLM",
    ["transformers"],
])
def test_a_foreign_auto_mapping_is_remote_code(lora, spec, mapping):
    assert rejected(edit_config(lora, auto_mapping=mapping), spec) == "remote_code"


@pytest.mark.parametrize("changes, reason", [
    ({"auto_mapping": {"base_model_class": "Evil", "parent_library": "evil.models"}}, "remote_code"),
    ({"trust_remote_code": True}, "remote_code"),
    ({"megatron_config": {"x": 1}}, "remote_code"),
    ({"megatron_core": "os"}, "remote_code"),
    ({"tokenizer_class": "X"}, "config_key_not_allowed"),
    ({"runtime_config": {}}, "config_key_not_allowed"),
    ({"peft_type": "IA3"}, "adapter_type"),
    ({"modules_to_save": ["lm_head"]}, "replaces_embeddings"),
    ({"modules_to_save": ["model.norm"]}, "adds_trainable"),
    ({"trainable_token_indices": [1, 2]}, "replaces_embeddings"),
    ({"target_modules": ["q_proj", "embed_tokens"]}, "replaces_embeddings"),
    ({"target_modules": ["q_proj", "lm_head"]}, "replaces_embeddings"),
    ({"target_modules": "all-linear"}, "target_not_allowed"),
    ({"target_modules": ["q_proj", "norm"]}, "target_not_allowed"),
    ({"layer_replication": [[0, 2], [0, 2]]}, "adds_trainable"),
    ({"target_parameters": ["model.embed_tokens.weight"]}, "adds_trainable"),
    ({"bias": "all"}, "adds_trainable"),
    ({"lora_bias": True}, "adds_trainable"),
    ({"fan_in_fan_out": True}, "bad_config"),
    ({"init_lora_weights": "pissa"}, "bad_config"),
    ({"r": 16}, "rank_over_limit"),
    ({"rank_pattern": {"q_proj": 9}}, "rank_over_limit"),
    ({"rank_pattern": {"(a+)+$": 2}}, "bad_config"),
    ({"r": 0}, "bad_config"),
    ({"lora_alpha": float("nan")}, "bad_config"),
    ({"layers_to_transform": [5]}, "bad_config"),
    ({"use_dora": "yes"}, "bad_config"),
])
def test_bad_configs(lora, spec, changes, reason):
    assert rejected(edit_config(lora, **changes), spec) == reason


def test_malformed_config_json(lora, spec):
    for text in ("[1, 2]", "{", '{"r": 4, "r": 4}', "\xff", "[" * 5000, '{"r": NaN}'):
        (lora / CONFIG).write_bytes(text.encode("utf-8", "surrogateescape"))
        assert rejected(lora, spec) == "bad_config"
    cfg = json.loads(json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8}))
    (lora / CONFIG).write_text(json.dumps(cfg))
    assert rejected(lora, spec) == "bad_config"  # target_modules is required


def test_adapter_types_follow_the_limits(made, spec, tmp_path):
    lora_only = AdapterLimits(("lora",), 8, LLAMA_TARGETS, max_bytes=1 << 20)
    assert rejected(made["dora"], spec, lora_only) == "adapter_type"
    dora_only = AdapterLimits(("dora",), 8, LLAMA_TARGETS, max_bytes=1 << 20)
    assert rejected(made["lora"], spec, dora_only) == "adapter_type"


def test_rank_over_limit_and_targets_not_allowed(made, spec, lora):
    assert rejected(made["r16"], spec) == "rank_over_limit"
    edit_config(lora, r=4)  # a config that lies about the tensors' rank
    shutil.copy(made["r16"] / WEIGHTS, lora / WEIGHTS)
    assert rejected(lora, spec) == "rank_over_limit"
    attention = AdapterLimits(("lora",), 8, ("q_proj", "v_proj"), max_bytes=1 << 20)
    assert rejected(made["lora"], spec, attention) == "target_not_allowed"
    edit_config(lora, target_modules=["q_proj", "v_proj"])  # the config hides the MLP tensors
    shutil.copy(made["lora"] / WEIGHTS, lora / WEIGHTS)
    assert rejected(lora, spec, attention) == "target_not_allowed"


def test_real_modules_to_save_adapter_is_rejected(made, spec):
    assert rejected(made["head"], spec) == "replaces_embeddings"


# --- tensors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values(lora, spec, value):
    def poison(t):
        t[Q_B][3, 1] = value

    assert rejected(edit_tensors(lora, poison), spec) == "non_finite"


@pytest.mark.parametrize("dtype", [torch.float64, torch.int64, torch.int8, torch.bool])
def test_dtypes_off_the_list(lora, spec, dtype):
    assert rejected(edit_tensors(lora, lambda t: t.update({Q_A: t[Q_A].to(dtype)})), spec) == "dtype"


@pytest.mark.parametrize("name, shape, reason", [
    (Q_A, (4, 31), "shape_mismatch"),
    (Q_B, (31, 4), "shape_mismatch"),
    (Q_B, (32, 3), "shape_mismatch"),
    (Q_A, (4, 32, 1), "shape_mismatch"),
    (Q_A, (2, 32), "shape_mismatch"),
])
def test_wrong_shapes(lora, spec, name, shape, reason):
    assert rejected(edit_tensors(lora, lambda t: t.update({name: torch.zeros(shape)})), spec) == reason


def test_rank_mismatch_with_config(lora, spec):
    edit_config(lora, r=2)
    assert rejected(lora, spec) == "rank_mismatch"


@pytest.mark.parametrize("extra, reason", [
    ("base_model.model.model.embed_tokens.weight", "replaces_embeddings"),
    ("base_model.model.lm_head.weight", "replaces_embeddings"),
    ("base_model.model.model.layers.0.self_attn.q_proj.weight", "unexpected_tensor"),
    ("base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight", "unexpected_tensor"),
    ("base_model.model.model.layers.0.mlp.q_proj.lora_A.weight", "unexpected_tensor"),
    ("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", "unexpected_tensor"),
    ("base_model.model.model.layers.00.self_attn.q_proj.lora_A.weight", "unexpected_tensor"),
    ("base_model.model.model.norm.weight", "unexpected_tensor"),
])
def test_unexpected_tensor_names(lora, spec, extra, reason):
    assert rejected(edit_tensors(lora, lambda t: t.update({extra: torch.zeros(1)})), spec) == reason


def test_missing_halves_and_magnitudes(lora, dora, spec):
    assert rejected(edit_tensors(lora, lambda t: t.pop(Q_B)), spec) == "missing_tensor"  # A without B
    shutil.copy(dora / WEIGHTS, lora / WEIGHTS)
    assert rejected(lora, spec) == "unexpected_tensor"  # magnitudes in a LoRA adapter
    assert rejected(edit_tensors(dora, lambda t: t.pop(Q_M)), spec) == "missing_tensor"


def test_module_missing_entirely(lora, spec):
    assert rejected(edit_tensors(lora, lambda t: (t.pop(Q_A), t.pop(Q_B))), spec) == "missing_tensor"


def test_norm_bounds(made, lora, dora, spec, tmp_path):
    assert rejected(edit_tensors(lora, lambda t: t[Q_B].mul_(100)), spec) == "norm_too_large"
    tight = NormBounds(max_delta_norm=1e-3)
    assert rejected(made["lora"], BaseSpec.from_config(tiny_config()), bounds=tight) == "norm_too_large"
    big = copy_of(made, "lora", tmp_path / "big")
    assert rejected(edit_tensors(big, lambda t: t[Q_A].fill_(2e4)), spec) == "norm_too_large"
    assert rejected(edit_tensors(dora, lambda t: t[Q_M].mul_(1e3)), spec) == "norm_too_large"
    neg = copy_of(made, "dora", tmp_path / "neg")
    assert rejected(edit_tensors(neg, lambda t: t[Q_M].neg_()), spec) == "bad_magnitude"
    zero = copy_of(made, "dora", tmp_path / "zero")
    assert rejected(edit_tensors(zero, lambda t: t[Q_M].zero_()), spec) == "bad_magnitude"


# --- the safetensors header -----------------------------------------------------------------------


def small(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


@pytest.mark.parametrize("header, data, length, reason", [
    ({"a": small()}, b"\0" * 8, 10**6, "bad_header"),  # header length larger than the file
    ({"a": small()}, b"\0" * 8, 2**64 - 1, "bad_header"),
    (b'{"a": 1}' + b" " * 40, b"", 10, "bad_header"),  # lying length: cuts the JSON short
    ({"a": small(), "b": small(offsets=(4, 12))}, b"\0" * 12, None, "bad_header"),  # overlap
    ({"a": small(), "b": small(offsets=(0, 8))}, b"\0" * 8, None, "bad_header"),  # same bytes twice
    ({"a": small(), "b": small(offsets=(12, 20))}, b"\0" * 20, None, "bad_header"),  # gap
    ({"a": small()}, b"\0" * 16, None, "bad_header"),  # trailing bytes nobody declares
    ({"a": small(offsets=(0, 12))}, b"\0" * 12, None, "bad_header"),  # size != shape x dtype
    ({"a": small(shape=(-1,))}, b"\0" * 8, None, "bad_header"),
    ({"a": small(shape=(2.0,))}, b"\0" * 8, None, "bad_header"),
    ({"a": small(offsets=(0, 2**70))}, b"\0" * 8, None, "bad_header"),
    ({"a": {**small(), "extra": 1}}, b"\0" * 8, None, "bad_header"),
    ({"a": small(dtype="F64", offsets=(0, 16))}, b"\0" * 16, None, "dtype"),
    ({"a": small(dtype="Q4")}, b"\0" * 8, None, "dtype"),
    ({"__metadata__": {"format": 1}, "a": small()}, b"\0" * 8, None, "bad_header"),
    ([1, 2], b"", None, "bad_header"),
    (b'{"a": 1, "a": 2}', b"", None, "bad_header"),
    (b"\xff\xfe{}", b"", None, "bad_header"),
])
def test_malformed_headers(lora, spec, header, data, length, reason):
    write_raw(lora / WEIGHTS, header, data, length)
    assert rejected(lora, spec) == reason


def test_truncated_and_tiny_files(lora, spec):
    raw = (lora / WEIGHTS).read_bytes()
    for size in (0, 3, 8, 20, len(raw) // 2, len(raw) - 1):
        (lora / WEIGHTS).write_bytes(raw[:size])
        assert rejected(lora, spec) == "bad_header"


def test_parse_header_accepts_what_safetensors_writes(made):
    raw = (made["dora"] / WEIGHTS).read_bytes()
    tensors, _ = parse_header(raw, len(raw))
    assert {n: list(i.shape) for n, i in tensors.items()} == {
        n: list(t.shape) for n, t in load_file(made["dora"] / WEIGHTS).items()
    }
    with pytest.raises(HeaderError):
        parse_header(raw[:100], len(raw))


# --- fuzzing: nothing but AdapterRejected escapes, and what passes is what the limits allow ---------


def rejected_or_acceptable(folder: Path, spec: BaseSpec) -> None:
    """A fuzzed adapter is either rejected for a known reason or accepted and within every limit."""
    try:
        checked = check_adapter(folder, spec, LIMITS)
    except AdapterRejected as exc:
        assert exc.reason in REASONS
    else:
        assert_acceptable(folder, spec, checked)


def assert_acceptable(folder: Path, spec: BaseSpec, checked) -> None:
    """What every accepted adapter satisfies, re-derived from its files with other readers (json,
    safetensors, peft) rather than from the checks' own results."""
    from peft import LoraConfig

    config = json.loads((folder / "adapter_config.json").read_text())
    peft_config = LoraConfig.from_pretrained(str(folder))  # peft itself reads the accepted config
    ranks = [config["r"], *(config.get("rank_pattern") or {}).values()]
    assert max(ranks) <= LIMITS.max_rank and checked.rank == config["r"] == peft_config.r
    kind = "dora" if config.get("use_dora") else "lora"
    assert checked.adapter_type == kind and kind in LIMITS.types and bool(peft_config.use_dora) == (kind == "dora")
    assert set(config["target_modules"]) <= set(LIMITS.target_modules) and set(checked.target_modules) == set(
        config["target_modules"])
    for key in ("modules_to_save", "trainable_token_indices"):
        assert not config.get(key)
    assert config.get("bias", "none") == "none"
    assert checked.n_bytes <= LIMITS.max_bytes and checked.content_hash == content_hash(folder)
    tensors = load_file(folder / WEIGHTS)
    assert tensors and checked.n_params == sum(t.numel() for t in tensors.values())
    for name, t in tensors.items():
        assert torch.isfinite(t).all() and t.abs().max() <= NormBounds().max_abs_value, name
        module = name.split(".")[-3] if name.endswith(".weight") else name.split(".")[-2]
        _, fan_in, fan_out = spec.modules[module]
        if ".lora_A." in name:
            assert t.shape[1] == fan_in and t.shape[0] <= LIMITS.max_rank, name
        elif ".lora_B." in name:
            assert t.shape[0] == fan_out and t.shape[1] <= LIMITS.max_rank, name
    assert all(0 <= n <= NormBounds().max_delta_norm for n in checked.delta_norms.values())



@pytest.fixture(scope="module")
def fuzz_folder(made, tmp_path_factory):
    return Path(shutil.copytree(made["lora"], tmp_path_factory.mktemp("fuzz") / "a"))


FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_are_always_rejected(fuzz_folder, spec, data):
    (fuzz_folder / WEIGHTS).write_bytes(data)
    with pytest.raises(AdapterRejected):
        check_adapter(fuzz_folder, spec, LIMITS)


header_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 2**65) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
tensor_entries = st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "F16", "BF16", "I64", "F64", "X"]),
    "shape": st.lists(st.integers(-1, 40), max_size=3),
    "data_offsets": st.lists(st.integers(-1, 400), min_size=2, max_size=2),
})


@FUZZ
@given(st.dictionaries(st.text(max_size=60) | st.just(Q_A), tensor_entries | header_values, max_size=4),
       st.binary(max_size=300), st.integers(-4, 4))
def test_random_headers_are_always_rejected(fuzz_folder, spec, header, data, skew):
    raw = json.dumps(header).encode()
    write_raw(fuzz_folder / WEIGHTS, raw, data, max(0, len(raw) + skew))
    with pytest.raises(AdapterRejected):
        check_adapter(fuzz_folder, spec, LIMITS)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4))
@example(flips=[(0, 0)])  # a low mantissa byte: a value barely moves, and the adapter must still pass
def test_mutated_honest_files_pass_or_are_rejected(made, spec, flips):
    """Bytes of the tensor data changed at random (the header is fuzzed above): rejected for a reason,
    or accepted and within every limit."""
    raw = bytearray((made["lora"] / WEIGHTS).read_bytes())
    start = 8 + struct.unpack("<Q", raw[:8])[0]
    for position, value in flips:
        raw[start + position % (len(raw) - start)] = value
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(shutil.copytree(made["lora"], Path(tmp) / "a"))
        (folder / WEIGHTS).write_bytes(bytes(raw))
        rejected_or_acceptable(folder, spec)


config_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from([10**400, -(10**400), 0.5, 1e300])
    | st.floats(allow_nan=False) | st.text(max_size=12) | st.sampled_from(sorted(LLAMA_TARGETS)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=10,
)


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(ALLOWED_CONFIG_KEYS)) | st.text(max_size=12),
                       config_values, max_size=5))
@example(changes={"lora_dropout": 0.1})  # a config within the limits must pass
def test_random_configs_pass_or_are_rejected(made, spec, changes):
    with tempfile.TemporaryDirectory() as tmp:
        folder = edit_config(Path(shutil.copytree(made["lora"], Path(tmp) / "a")), **changes)
        rejected_or_acceptable(folder, spec)
