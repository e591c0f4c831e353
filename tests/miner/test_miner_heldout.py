"""The miner's held-out gate (miner.heldout: score_heldout, then decide) with adapters whose quality the
test controls, so the test says which must pass and which must be refused, whatever training achieves.

How quality is controlled: a tiny model M is taught to answer every BTC one-day question with one fixed,
well-formed forecast. The base the gate sees is D = M with a rank-8 damage on every ``o_proj`` and
``down_proj`` (W_D = W_M - B0 A0), so it no longer answers in format. The *good* adapter is exactly that
damage as a LoRA (lora_A = A0, lora_B = B0, scale 1): base + adapter = M. The *bad* adapter is the same
damage again (lora_B = -B0): base + adapter = M - 2 B0 A0.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cortex.data import build_samples, split_by_time
from cortex.data.sources import SyntheticSource
from cortex.data.sources.synthetic import SyntheticParams
from cortex.protocol.competition import CORTEX_TINY
from miner.heldout import decide, score_heldout

ROOT = Path(__file__).resolve().parents[2]
ANSWER = ('<think>The trend is up and flows are steady. Overall I lean up.</think>'
          '<answer>{"asset": "BTC", "horizon_days": 1, "direction": "up", "p_up": 0.6, "return_pct": 1.0}</answer>')
TARGETS = ("o_proj", "down_proj")
RANK = 8


def _damage(model, seed: int = 7) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """A rank-8 (B0, A0) per targeted module, as large as the weight it damages."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, module in model.named_modules():
        if name.split(".")[-1] in TARGETS:
            w = module.weight
            a = torch.randn(RANK, w.shape[1], generator=gen)
            b = torch.randn(w.shape[0], RANK, generator=gen)
            b *= 2 * w.norm() / (b @ a).norm()
            out[name] = (b, a)
    return out


def _adapter(base: Path, damage: dict, sign: float, out: Path) -> Path:
    """A LoRA adapter on ``base`` whose delta is ``sign * B0 A0`` in every damaged module."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=RANK, lora_alpha=RANK, target_modules=list(TARGETS), task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, (b, a) in damage.items():
            layer = model.get_submodule(f"base_model.model.{name}")
            layer.lora_A["default"].weight.copy_(a)
            layer.lora_B["default"].weight.copy_(sign * b)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cortex.model.random_base import build_base

    root = tmp_path_factory.mktemp("gate")
    # a fixed market (K = 2, the one this world was built on): the test is about the gate, not the market
    frames = SyntheticSource(params=SyntheticParams(seed=5, momentum=2.0)).load(["BTC"], "2023-01-01", "2023-12-31")
    splits, _ = split_by_time(build_samples(frames, ["BTC"], [1], stride=7))
    train, heldout = splits["train"][:6], [s.row() for s in splits["test"][:4]]
    texts = [m["content"] for s in train for m in s.prompt] + [ANSWER] * 20
    template = (ROOT / "tests/data/chat_templates/llama3_1.jinja").read_text()
    path = build_base(root / "m", "llama3", template, texts)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    # M: every prompt answered with ANSWER (loss on the answer and its end-of-turn token only)
    answer = tokenizer(ANSWER + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    batches = []
    for s in train:
        prompt = tokenizer.apply_chat_template(s.prompt, add_generation_prompt=True, tokenize=True,
                                               return_dict=True)["input_ids"]
        ids = torch.tensor([list(prompt) + answer])
        labels = ids.clone()
        labels[0, :len(prompt)] = -100
        batches.append((ids, labels))
    torch.manual_seed(0)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(120):
        ids, labels = batches[step % len(batches)]
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    model.eval()
    damage = _damage(model)
    with torch.no_grad():  # D = M - B0 A0: the base the gate sees
        for name, (b, a) in damage.items():
            model.get_submodule(name).weight -= b @ a
    model.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    base = root / "base"
    good = _adapter(base, damage, 1.0, root / "good")
    bad = _adapter(base, damage, -1.0, root / "bad")
    scores = score_heldout(base, {"base": None, "good": good, "bad": bad}, heldout, CORTEX_TINY,
                           max_new_tokens=96, device="cpu")
    return scores


def gate(scores: dict, adapter: str, previous: str | None = None) -> tuple[bool, str]:
    metrics = {"heldout_reward_adapter": scores[f"heldout_reward_{adapter}"],
               "heldout_reward_base": scores["heldout_reward_base"]}
    if previous is not None:
        metrics["heldout_reward_previous"] = scores[f"heldout_reward_{previous}"]
    d = decide(metrics)
    return d.publish, d.reason


def test_the_controlled_adapters_are_what_the_test_says(world):
    """The restoring adapter answers in format on every held-out question; the damaged base does not."""
    assert world["heldout_parse_rate_good"] == 1.0
    assert world["heldout_example_good"].startswith("<think>The trend is up")
    assert world["heldout_parse_rate_base"] < 1.0 and world["heldout_parse_rate_bad"] < 1.0


def test_a_good_adapter_passes_the_gate(world):
    publish, reason = gate(world, "good")
    assert publish and "beats the base" in reason


def test_a_bad_adapter_is_refused(world):
    publish, reason = gate(world, "bad")
    assert not publish and "does not beat the base" in reason and "not publishing" in reason


def test_an_adapter_no_better_than_the_last_published_is_refused(world):
    publish, reason = gate(world, "good", previous="good")  # the same quality as what is on chain
    assert not publish and "does not beat the last published adapter" in reason
