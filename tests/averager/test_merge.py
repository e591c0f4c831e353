"""Exact LoRA/DoRA merging: every merge equals a dense reference built with peft's own merge_and_unload."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from averager.merge import (delta, merge_state_dict, merge_weight, merged_delta, rank_r_delta, row_norms,
                            truncate_factors, weight_warnings)
from cortex.adapter import (NO_NORM_BOUNDS, AdapterRejected, BaseSpec, LowRank, group_terms, load_adapter,
                            own_limits)

TARGETS = ["q_proj", "v_proj", "o_proj", "down_proj"]
TOL = dict(rtol=1e-5, atol=2e-6)


def tiny_config() -> LlamaConfig:
    return LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=256)


def make_base(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_config()).eval()


def make_adapter(base: LlamaForCausalLM, path: Path, seed: int, *, dora: bool, r: int = 4, alpha: float = 8,
                 targets: list[str] = TARGETS, **extra) -> PeftModel:
    """A peft adapter with random (non-zero) B and perturbed DoRA magnitudes, saved to ``path``."""
    torch.manual_seed(seed)
    config = LoraConfig(r=r, lora_alpha=alpha, use_dora=dora, target_modules=targets, **extra)
    model = get_peft_model(copy.deepcopy(base), config)
    for name, param in model.named_parameters():
        if "lora_A" in name or "lora_B" in name:
            param.data = torch.randn_like(param) * 0.1
        elif "lora_magnitude_vector" in name:
            param.data = param.data * (0.7 + 0.6 * torch.rand_like(param))
    model.save_pretrained(str(path))
    return model.eval()


# These adapters' updates are deliberately large (random factors × 0.1, a few times ‖W‖) so that merge
# errors show: loaded as a hand merge loads them (the bounds for miners are tested in test_adapter_checks).


def load(path: Path, base: LlamaForCausalLM | None = None):
    """The adapter at ``path`` through the checked loader, against the tiny base (shapes and norms)."""
    spec = BaseSpec.from_model(base if base is not None else make_base())
    return load_adapter(path, spec, own_limits(spec), bounds=NO_NORM_BOUNDS)


def base_state(base: LlamaForCausalLM) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in base.state_dict().items()}


def dense_merged(model: PeftModel) -> dict[str, torch.Tensor]:
    """peft's own merge of one adapter into a fresh copy of its base."""
    return {k: v.detach().clone() for k, v in copy.deepcopy(model).merge_and_unload().state_dict().items()}


def reference(state: dict, dense: list[dict], weights: list[float]) -> dict[str, torch.Tensor]:
    """Σ wᵢ W'ᵢ + (1 − Σ wᵢ) W: the weighted average of each adapter's own merged model."""
    return {k: state[k] + sum(w * (d[k] - state[k]) for w, d in zip(weights, dense)) for k in state}


def assert_state_close(got: dict, want: dict, **tol) -> None:
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key].float(), want[key].float(), **(tol or TOL), msg=key)


@pytest.fixture(scope="module")
def base() -> LlamaForCausalLM:
    return make_base()


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
@pytest.mark.parametrize("weights", [[0.5, 0.3, 0.2], [0.7, 0.6, -0.1], [0.25, 0.25]])
def test_merge_equals_dense_reference(base, tmp_path, dora, weights):
    models = [make_adapter(base, tmp_path / f"a{i}", 10 + i, dora=dora) for i in range(len(weights))]
    state = base_state(base)
    want = reference(state, [dense_merged(m) for m in models], weights)
    adapters = [(load(tmp_path / f"a{i}", base), w) for i, w in enumerate(weights)]
    got = merge_state_dict(state, group_terms(adapters))
    assert_state_close(got, want)
    assert any((got[k] - state[k]).abs().max() > 1e-3 for k in state)  # the test is not vacuous


def test_mixed_lora_dora_and_partial_targets(base, tmp_path):
    """Adapters of either kind on overlapping module sets: each module averages the merged weights."""
    models = [make_adapter(base, tmp_path / "a0", 1, dora=True, targets=["q_proj", "up_proj"]),
              make_adapter(base, tmp_path / "a1", 2, dora=False, targets=["q_proj", "k_proj"], r=2, alpha=4),
              make_adapter(base, tmp_path / "a2", 3, dora=True, r=8, alpha=4)]
    weights = [0.2, 0.5, 0.3]
    state = base_state(base)
    want = reference(state, [dense_merged(m) for m in models], weights)
    got = merge_state_dict(state, group_terms([(load(tmp_path / f"a{i}", base), w)
                                               for i, w in enumerate(weights)]))
    assert_state_close(got, want)


@pytest.mark.parametrize("extra", [dict(use_rslora=True, r=8, alpha=6),
                                   dict(rank_pattern={"v_proj": 2, "layers.1.self_attn.q_proj": 6},
                                        alpha_pattern={"o_proj": 3.0})], ids=["rslora", "patterns"])
def test_scaling_variants_match_peft(base, tmp_path, extra):
    r, alpha = extra.pop("r", 4), extra.pop("alpha", 8)
    model = make_adapter(base, tmp_path / "a", 5, dora=True, r=r, alpha=alpha, **extra)
    state = base_state(base)
    got = merge_state_dict(state, group_terms([(load(tmp_path / "a", base), 1.0)]))
    assert_state_close(got, dense_merged(model))


def test_single_dora_with_weight_one_reproduces_outputs(base, tmp_path):
    model = make_adapter(base, tmp_path / "a", 7, dora=True)
    merged = LlamaForCausalLM(tiny_config()).eval()
    merged.load_state_dict(merge_state_dict(base_state(base), group_terms([(load(tmp_path / "a", base), 1.0)])))
    ids = torch.randint(0, 256, (3, 17), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got, plain = model(ids).logits, merged(ids).logits, base(ids).logits
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert (want - plain).abs().max() > 1e-2  # the adapter does change the outputs


def test_averaging_A_and_B_separately_is_not_the_merge(base, tmp_path):
    """(Σ wB)(Σ wA) = Σ w²BA + cross terms Σ_{i≠j} wᵢwⱼ BᵢAⱼ nobody trained; the exact merge has neither."""
    weights = [0.5, 0.3, 0.2]
    models = [make_adapter(base, tmp_path / f"a{i}", 20 + i, dora=False) for i in range(3)]
    state = base_state(base)
    exact = reference(state, [dense_merged(m) for m in models], weights)
    adapters = [load(tmp_path / f"a{i}", base) for i in range(3)]
    for module in adapters[0].modules:
        fs = [a.modules[module] for a in adapters]
        A_avg = sum(w * f.A for w, f in zip(weights, fs))
        B_avg = sum(w * f.B for w, f in zip(weights, fs))
        W = state[f"{module}.weight"]
        naive = W + fs[0].scale * B_avg @ A_avg
        cross = fs[0].scale * sum(weights[i] * weights[j] * fs[i].B @ fs[j].A
                                  for i in range(3) for j in range(3) if i != j)
        own = sum(w * delta(f) for w, f in zip(weights, fs))
        torch.testing.assert_close(naive - W, sum(w * w * delta(f) for w, f in zip(weights, fs)) + cross)
        wrong = (naive - exact[f"{module}.weight"]).norm() / own.norm()
        assert wrong > 0.3, f"{module}: separate averaging is off by only {wrong:.3f} of the update"


def test_dora_weights_not_summing_to_one_leave_the_rest_on_the_base(base, tmp_path):
    models = [make_adapter(base, tmp_path / f"a{i}", 30 + i, dora=True) for i in range(2)]
    weights = [0.3, 0.4]
    notes = weight_warnings(weights, any_dora=True)
    assert len(notes) == 1 and "0.3 stays on the" in notes[0]
    state = base_state(base)
    got = merge_state_dict(state, group_terms([(load(tmp_path / f"a{i}", base), w)
                                               for i, w in enumerate(weights)]))
    assert_state_close(got, reference(state, [dense_merged(m) for m in models], weights))
    assert weight_warnings([0.5, 0.5], any_dora=True) == []
    with pytest.raises(ValueError):
        weight_warnings([float("nan")], any_dora=False)


def fake_4bit(name: str, W: torch.Tensor) -> torch.Tensor:
    """A stand-in for a 4-bit quantise/dequantise round trip: 16 levels per output row."""
    if W.ndim != 2 or "proj" not in name:
        return W
    scale = W.abs().amax(1, keepdim=True) / 7
    return (W / scale).round().clamp(-8, 7) * scale


def test_transform_hook_merges_against_the_dequantised_base(base, tmp_path):
    """Adapters trained on a 4-bit base merge against dequant(quant(W)), the base they actually saw."""
    quantised = copy.deepcopy(base)
    quantised.load_state_dict({k: fake_4bit(k, v) for k, v in base_state(base).items()})
    model = make_adapter(quantised, tmp_path / "a", 40, dora=True)
    got = merge_state_dict(base_state(base), group_terms([(load(tmp_path / "a", base), 1.0)]),
                           transform=fake_4bit)
    assert_state_close(got, dense_merged(model))


@settings(max_examples=30, deadline=None)
@given(out=st.integers(1, 24), inp=st.integers(1, 24), r=st.integers(1, 6), seed=st.integers(0, 2**16),
       scale=st.floats(0.01, 4.0))
def test_row_norms_from_low_rank_pieces(out, inp, r, seed, scale):
    g = torch.Generator().manual_seed(seed)
    W, A, B = torch.randn(out, inp, generator=g), torch.randn(r, inp, generator=g), torch.randn(out, r, generator=g)
    f = LowRank(A=A.double(), B=B.double(), scale=scale)
    want = torch.linalg.norm(W.double() + scale * B.double() @ A.double(), dim=1)
    torch.testing.assert_close(row_norms(W.double(), f), want, rtol=1e-9, atol=1e-9)


def random_terms(seed: int, out: int, inp: int, ranks: list[int], dora: bool) -> tuple[torch.Tensor, list]:
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(out, inp, generator=g, dtype=torch.float64)
    terms = []
    for i, r in enumerate(ranks):
        f = LowRank(A=torch.randn(r, inp, generator=g, dtype=torch.float64),
                    B=torch.randn(out, r, generator=g, dtype=torch.float64), scale=0.5 + i)
        if dora:
            f = LowRank(f.A, f.B, f.scale, magnitude=row_norms(W, f) * (0.5 + torch.rand(out, generator=g,
                                                                                          dtype=torch.float64)))
        terms.append((1 / len(ranks), f))
    return W, terms


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_rank_r_keeps_the_best_rank_r_part_of_the_exact_delta(dora):
    W, terms = random_terms(1, 40, 30, [3, 4, 2], dora)
    exact = merge_weight(W, terms) - W
    torch.testing.assert_close(merged_delta(W, terms), exact)
    full = 30 if dora else 9  # DoRA's delta has the full-rank part diag(σ̄ − 1) W
    B, A, energy = rank_r_delta(W, terms, full + 2)
    assert B.shape == (40, full + 2) and A.shape == (full + 2, 30)
    assert energy == pytest.approx(1.0)
    torch.testing.assert_close(B @ A, exact)
    S = torch.linalg.svdvals(exact)
    previous = 1.0
    for r in (6, 3, 1):
        B, A, energy = rank_r_delta(W, terms, r)
        assert energy == pytest.approx(float((S[:r] ** 2).sum() / (S ** 2).sum()))
        assert energy < previous
        previous = energy
        # Eckart–Young: the error is exactly the dropped singular values
        assert float(torch.linalg.norm(exact - B @ A)) == pytest.approx(float(S[r:].norm()), rel=1e-8)


def test_truncate_factors_handles_more_rank_than_rows():
    g = torch.Generator().manual_seed(3)
    B, A = torch.randn(5, 12, generator=g, dtype=torch.float64), torch.randn(12, 7, generator=g, dtype=torch.float64)
    Br, Ar, energy = truncate_factors(B, A, 8)
    assert energy == pytest.approx(1.0) and Br.shape == (5, 8)
    torch.testing.assert_close(Br @ Ar, B @ A)


def test_shapes_that_do_not_fit_are_refused():
    W, terms = random_terms(2, 8, 6, [2], dora=False)
    with pytest.raises(ValueError, match="do not fit"):
        merge_weight(W.T.contiguous(), terms)


def edit_config(path: Path, **changes) -> None:
    config = json.loads((path / "adapter_config.json").read_text())
    config.update(changes)
    (path / "adapter_config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("change, reason, message", [
    (dict(fan_in_fan_out=True), "bad_config", "fan_in_fan_out"),
    (dict(bias="all"), "adds_trainable", "bias"),
    (dict(peft_type="IA3"), "adapter_type", "IA3"),
    (dict(init_lora_weights="pissa"), "bad_config", "init_lora_weights"),
    (dict(lora_bias=True), "adds_trainable", "lora_bias"),
    (dict(r=8), "rank_mismatch", "tensor rank 4, adapter_config.json says 8"),
    (dict(use_dora=False), "unexpected_tensor", "magnitude"),
    (dict(future_variant={"on": True}), "config_key_not_allowed", "future_variant"),
])
def test_unexpected_adapters_are_refused(base, tmp_path, change, reason, message):
    make_adapter(base, tmp_path / "a", 50, dora=True, targets=["q_proj"])
    edit_config(tmp_path / "a", **change)
    with pytest.raises(AdapterRejected, match=message) as refused:
        load(tmp_path / "a", base)
    assert refused.value.reason == reason


def test_extra_trained_modules_and_pickles_are_refused(base, tmp_path):
    make_adapter(base, tmp_path / "a", 51, dora=False, targets=["q_proj"], modules_to_save=["lm_head"])
    with pytest.raises(AdapterRejected, match="modules_to_save") as refused:
        load(tmp_path / "a", base)
    assert refused.value.reason == "replaces_embeddings"
    edit_config(tmp_path / "a", modules_to_save=None)
    with pytest.raises(AdapterRejected, match="replaces an embedding") as refused:
        load(tmp_path / "a", base)
    assert refused.value.reason == "replaces_embeddings"
    (tmp_path / "a" / "adapter_model.safetensors").rename(tmp_path / "a" / "adapter_model.bin")
    with pytest.raises(AdapterRejected, match="pickle") as refused:
        load(tmp_path / "a", base)
    assert refused.value.reason == "pickle"
