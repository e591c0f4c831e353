"""The grouped-LoRA engine with a static KV cache and a compiled decode step (issue 24): the same greedy
tokens as the dynamic cache, token for token, for adapters of different ranks and targets and prompts of
different lengths; the compiled step is traced on the CPU with dynamo's ``eager`` backend (inductor and
CUDA graphs need a GPU: bench/gpu_validator.py --static-cache runs them there)."""

from __future__ import annotations

import pytest
import torch
from adapter_builders import save_peft
from peft import PeftModelForCausalLM

from cortex.data import build_samples, get_source
from cortex.errors import CortexError
from cortex.eval.generate import Generator
from cortex.eval.grouped_lora import GroupedLora
from cortex.eval.options import EngineOptions
from cortex.model.tiny import TinyConfig, build_model
from cortex.model.tokenizer import chat_corpus, train_tokenizer

TINY = TinyConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=128)
ADAPTERS = {"r2-mlp": (2, ["k_proj", "gate_proj", "up_proj"]), "r4-mixed": (4, ["q_proj", "v_proj", "o_proj", "down_proj"]),
            "r8-attn": (8, ["q_proj", "k_proj", "v_proj", "o_proj"])}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    frames = get_source("synthetic:3").load(["BTC", "ETH"], "2023-01-01", "2023-06-30")
    samples = build_samples(frames, ["BTC", "ETH"], [1], start="2023-05-01", end="2023-05-10")
    tokenizer = train_tokenizer(chat_corpus(s.prompt for s in samples), vocab_size=600)
    root = tmp_path_factory.mktemp("static")
    folders = {name: save_peft(build_model(TINY, tokenizer, seed=0), root / name, seed=rank, std=3.0, r=rank,
                               lora_alpha=2 * rank, target_modules=targets)
               for name, (rank, targets) in ADAPTERS.items()}
    prompts = []
    for keep, sample in zip((1.0, 0.4, 0.7), samples):  # user messages cut to different lengths
        system, user = sample.prompt[0], sample.prompt[-1]
        prompts.append([system, {"role": "user", "content": user["content"][:int(len(user["content"]) * keep)]}])
    return tokenizer, folders, prompts


def decode(world, monkeypatch, *, batch_size: int, kv_cache: str, compile: str = "auto", keys=(None, *ADAPTERS)):
    """Every (key, prompt) through the grouped path: (texts and counts per key, generate's outputs in order)."""
    tokenizer, folders, prompts = world
    generator = Generator(build_model(TINY, tokenizer, seed=0), tokenizer, max_new_tokens=10, batch_size=batch_size,
                          kv_cache=kv_cache, compile=compile)
    outputs, real = [], PeftModelForCausalLM.generate
    monkeypatch.setattr(PeftModelForCausalLM, "generate", lambda self, *a, **k: outputs.append(real(self, *a, **k))
                        or outputs[-1])
    built, build = [], GroupedLora.build
    monkeypatch.setattr(GroupedLora, "build", classmethod(lambda cls, *a, **k: built.append(build(*a, **k)) or built[-1]))
    assert generator.attach(folders) == {}
    try:
        answers = generator.generate_mixed(prompts, list(keys))
    finally:
        generator.detach()
        monkeypatch.undo()
    assert built and all(g is not None for g in built)  # the grouped path, not peft's adapter_names loop
    return answers, outputs


@pytest.mark.parametrize("batch_size", [6, 2])  # two model segments of 3 prompts; one segment of 2 prompts, then 1
def test_static_cache_gives_the_dynamic_caches_tokens_token_for_token(world, monkeypatch, batch_size):
    _, _, prompts = world
    lengths = {len(p[-1]["content"]) for p in prompts}
    assert len(lengths) == len(prompts)  # left padding differs from row to row
    dynamic, dynamic_out = decode(world, monkeypatch, batch_size=batch_size, kv_cache="dynamic")
    static, static_out = decode(world, monkeypatch, batch_size=batch_size, kv_cache="static")
    assert len(dynamic_out) == len(static_out) == (2 if batch_size == 6 else 8)
    for a, b in zip(dynamic_out, static_out):
        assert torch.equal(a, b)  # prompt, every generated id, and the padding after an EOS
    assert static == dynamic
    assert len({tuple(texts) for texts, _ in static.values()}) == 1 + len(ADAPTERS)  # each model its own answers


def test_the_compiled_decode_step_gives_the_same_tokens_and_follows_each_batchs_adapters(world, monkeypatch):
    """Traced by dynamo (``eager`` backend: the graph capture without inductor's code generation); the
    adapters change from batch to batch, and the tokens stay the dynamic cache's."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    dynamic, dynamic_out = decode(world, monkeypatch, batch_size=2, kv_cache="dynamic")
    captured = counters["stats"]["calls_captured"]
    compiled, compiled_out = decode(world, monkeypatch, batch_size=2, kv_cache="static", compile="eager")
    assert counters["stats"]["calls_captured"] > captured  # the decode step did go through torch.compile
    assert all(torch.equal(a, b) for a, b in zip(dynamic_out, compiled_out)) and compiled == dynamic
    torch._dynamo.reset()


def test_routing_fills_the_same_slots_in_place_and_marks_them_static(world):
    from peft import PeftModel

    tokenizer, folders, _ = world
    peft_model = PeftModel.from_pretrained(build_model(TINY, tokenizer, seed=0), str(folders["r4-mixed"]),
                                           adapter_name="a")
    peft_model.load_adapter(str(folders["r8-attn"]), adapter_name="b")
    grouped = GroupedLora.build(peft_model, ["a", "b"], rank=8)
    layer = grouped.layers[0][0]
    with grouped.routing(2) as route:
        route(["a", None])
        (hook,) = layer._forward_hooks.values()
        first = [c.cell_contents for c in hook.__closure__ if isinstance(c.cell_contents, torch.Tensor)]
        assert [t.shape[0] for t in first] == [2, 2]
        before = [t.data_ptr() for t in first]
        route(["b", "a"])
        assert list(layer._forward_hooks.values()) == [hook] and [t.data_ptr() for t in first] == before
        assert all(t._dynamo_static_input_type == "unguarded" for t in first)
        a_stack = grouped.layers[0][1]
        assert torch.equal(first[0], a_stack[[grouped.slots["b"], grouped.slots["a"]]])  # the new routes, in place
        with pytest.raises(ValueError, match="3 segments routed to 2 slots"):
            route(["a", "b", None])
    assert not layer._forward_hooks  # hooks removed on exit


def test_decode_kwargs_and_their_flags(world, monkeypatch):
    tokenizer, _, _ = world
    generator = Generator(build_model(TINY, tokenizer, seed=0), tokenizer)
    assert generator.decode_kwargs(compiled=True) == {}  # the default: dynamic cache, nothing compiled
    generator.kv_cache = "static"
    off = {"cache_implementation": "static", "disable_compile": True}
    assert generator.decode_kwargs(compiled=True) == off  # auto: no compile on a CPU
    monkeypatch.setattr(Generator, "device", property(lambda self: torch.device("cuda")))
    cuda = generator.decode_kwargs(compiled=True)["compile_config"]
    assert (cuda.backend, cuda.mode) == ("inductor", "reduce-overhead")  # CUDA graphs
    assert generator.decode_kwargs(compiled=False) == off  # peft's loop and folded weights: never compiled
    generator.compile = "off"
    assert generator.decode_kwargs(compiled=True) == off
    generator.compile = "aot_eager"
    assert generator.decode_kwargs(compiled=True)["compile_config"].mode == "default"
    assert EngineOptions(kv_cache="static", compile="eager").compile == "eager"
    with pytest.raises(CortexError, match="--engine.compile eager .* add --engine.kv-cache static"):
        EngineOptions(compile="eager")
    with pytest.raises(CortexError, match="--engine.kv-cache must be one of dynamic, static"):
        EngineOptions(kv_cache="paged")
