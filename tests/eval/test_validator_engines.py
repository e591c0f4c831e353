"""Engines and configuration: one engine per competition, the vllm refusal and prompt ids, flags and their
defaults."""

import argparse
import sys
from pathlib import Path

import pytest
import torch

from cortex.errors import CortexError
from cortex.eval.engines import choose_engine, require_engine
from validator.config import ValidatorConfig, add_args, from_args

ROOT = Path(__file__).resolve().parents[2]
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


def test_offline_and_live_defaults(tmp_path):
    offline = parse("--chain.path", str(tmp_path / "chain.db"), "--wallet.name", "v")
    assert offline.store == f"local:{tmp_path / 'store'}" and offline.clock == "simulated"
    assert offline.competitions == ("cortex-tiny",) and offline.source == "synthetic"
    assert offline.state.name == "state.json" and offline.state.parent.name == "3-v-default"
    assert offline.cache_dir == offline.state.parent / "cache" and offline.wandb.enabled
    assert [c.id for c in offline.schedule().competitions] == ["cortex-tiny"]
    live = parse("--subtensor.network", "finney", "--wandb.off", "--engine", "vllm")
    assert (live.store, live.clock, live.source, live.competitions) == ("hf", "calendar", "binance", ("cortex-70b",))
    assert not live.wandb.enabled and live.engine == "vllm"


def test_bad_flags_are_one_line_errors(tmp_path):
    with pytest.raises(CortexError, match="--round.blocks must be at least 1"):  # (--weights.alpha went with smoothing)
        parse("--chain.path", "c.db", "--round.blocks", "0")
    with pytest.raises(CortexError, match="YYYY-MM-DD"):
        parse("--chain.path", "c.db", "--clock.start-day", "March")
    with pytest.raises(CortexError, match="--store local:DIR"):
        parse()
    bad = tmp_path / "comps.yaml"
    bad.write_text("competitions: [{id: x}]\n")
    with pytest.raises(CortexError, match="comps.yaml"):
        parse("--chain.path", "c.db", "--competitions", str(bad)).schedule()


def test_one_engine_per_competition_chosen_by_the_adapter_types_it_allows(tmp_path):
    from dataclasses import replace

    from cortex.eval.engines import build_engine
    from cortex.protocol.competition import CORTEX_70B, CORTEX_TINY

    assert choose_engine("transformers", ("dora", "lora")) == "transformers"  # DoRA: folded, one at a time
    assert choose_engine("transformers", ("lora",)) == "multi-lora"  # LoRA only: mixed batches
    assert choose_engine("vllm", ("lora",)) == "vllm"
    with pytest.raises(CortexError, match="cortex-70b: it allows DoRA.*--engine transformers"):
        choose_engine("vllm", CORTEX_70B.adapters.types, "cortex-70b")
    with pytest.raises(CortexError, match="allows DoRA"):  # refused before the base is even looked at
        build_engine("vllm", tmp_path / "no-such-base", ("dora", "lora"), max_new_tokens=8, batch_size=2)
    require_engine("transformers", [CORTEX_TINY, replace(CORTEX_TINY, id="lora-only",
                                                         adapters=replace(CORTEX_TINY.adapters, types=("lora",)))])


def test_the_round_builds_one_engine_per_competition_from_its_types(monkeypatch, tmp_path):
    from dataclasses import replace

    import validator.round as round_module
    from cortex.protocol.competition import CORTEX_TINY

    built = []
    monkeypatch.setattr(round_module, "build_engine", lambda name, path, types, **kw: built.append(
        (name, path, tuple(types), kw["competition"])) or object())
    lora_only = replace(CORTEX_TINY, id="lora-only", adapters=replace(CORTEX_TINY.adapters, types=("lora",)))
    v = round_module.Validator.__new__(round_module.Validator)
    v.cfg, v.parts, v._engines = parse("--chain.path", str(tmp_path / "c.db")), round_module.Parts.__new__(
        round_module.Parts), {}
    v.parts.make_engine = None
    first = v._engine(CORTEX_TINY, tmp_path / "base")
    assert v._engine(CORTEX_TINY, tmp_path / "base") is first  # the whole round on one engine
    v._engine(lora_only, tmp_path / "base")
    assert built == [("transformers", tmp_path / "base", ("dora", "lora"), "cortex-tiny"),
                     ("transformers", tmp_path / "base", ("lora",), "lora-only")]


def llama3_tokenizer():
    """A tokenizer shaped like Llama 3's: its post-processor adds <|begin_of_text|>, and so does its template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
    words = ["system", "user", "assistant", "BTC", "up", "or", "down", "?", "You", "forecast", "\n\n", "."]
    vocab = {t: i for i, t in enumerate(specials + words + ["[UNK]"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                                       special_tokens=[("<|begin_of_text|>", 0)])
    template = ("{{ bos_token }}{% for m in messages %}<|start_header_id|> {{ m['role'] }} <|end_header_id|> "
                "{{ m['content'] }} <|eot_id|> {% endfor %}{% if add_generation_prompt %}<|start_header_id|> "
                "assistant <|end_header_id|> {% endif %}")
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   pad_token="<|eot_id|>", chat_template=template)


def test_both_engines_feed_the_same_ids_with_one_bos(monkeypatch):
    from types import SimpleNamespace

    from cortex.eval.engines import VLLMEngine
    from cortex.eval.generate import Generator

    tok = llama3_tokenizer()
    rows = [{"prompt": [{"role": "system", "content": "You forecast ."}, {"role": "user", "content": "BTC up or down ?"}]},
            {"prompt": [{"role": "user", "content": "BTC ?"}]}]
    text = tok.apply_chat_template(rows[0]["prompt"], tokenize=False, add_generation_prompt=True)
    assert tok(text)["input_ids"][:2] == [tok.bos_token_id] * 2  # what rendering to text and re-tokenizing did

    fed = []
    model = SimpleNamespace(eval=lambda: model, get_input_embeddings=lambda: SimpleNamespace(
        weight=torch.zeros(1)), generate=lambda input_ids, **kw: fed.append(input_ids) or input_ids)
    generator = Generator(model, tok, max_new_tokens=4, batch_size=1)
    generator._run(model, generator.prompt_ids([r["prompt"] for r in rows]), None)
    transformers_ids = [ids[0].tolist() for ids in fed]
    vllm_ids = [r["prompt_token_ids"] for r in VLLMEngine.requests(SimpleNamespace(tokenizer=tok), rows)]
    assert transformers_ids == vllm_ids
    assert all(ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1 for ids in vllm_ids)
    assert "vllm" not in sys.modules


def test_vllm_adapter_ids_are_stable_and_the_budget_is_checked_per_batch(monkeypatch, tmp_path):
    import types

    import cortex.eval.engines as engines
    from cortex.eval.engines import EngineOptions, Job, VLLMEngine, lora_id
    from cortex.reward import RewardConfig

    assert lora_id("a/b@" + "1" * 40) == lora_id("a/b@" + "1" * 40) == 207_048_477  # sha256-derived: the same in every process
    ids = {lora_id(f"miner{i}/model@{i:040x}") for i in range(1000)}
    assert len(ids) == 1000 and all(0 < i < 2**31 for i in ids)

    from fake_vllm import install

    install(monkeypatch)
    now, calls = [0.0], []

    def generate(prompts, params, use_tqdm, lora_request):
        calls.append([(p["prompt_token_ids"][-1], r and r.lora_int_id) for p, r in zip(prompts, lora_request)])
        now[0] += 10.0  # every batch takes ten seconds of the fake clock
        return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text="no answer", token_ids=[1, 2])])
                for _ in prompts]

    monkeypatch.setattr(engines.time, "monotonic", lambda: now[0])
    engine = VLLMEngine.__new__(VLLMEngine)
    engine.max_loras, engine.batch_size, engine.params, engine._paths = EngineOptions().max_loras, 2, None, {}
    engine.tokenizer, engine.llm = llama3_tokenizer(), types.SimpleNamespace(generate=generate)
    rows = [{"prompt": [{"role": "user", "content": w}]} for w in ("BTC", "up", "down")]
    jobs = [Job("base", None), Job("a/b@" + "1" * 40, tmp_path / "a"), Job("c/d@" + "2" * 40, tmp_path / "c")]
    results = list(engine.evaluate(rows, jobs, reward=RewardConfig(), time_budget=100.0))
    assert [r.key for r in results] == [j.key for j in jobs] and all(r.new_tokens == 6 for r in results)
    assert len(calls) == 2 and [len(c) for c in calls] == [6, 3]  # prompts in batches of 2, for every model
    assert {rid for c in calls for _, rid in c} == {None, lora_id(jobs[1].key), lora_id(jobs[2].key)}
    calls.clear()
    slow = list(engine.evaluate(rows * 4, jobs[1:], reward=RewardConfig(), time_budget=10.0))
    assert all(r.rewards is None and r.reason.startswith("time_budget") for r in slow)
    assert len(calls) == 2 + 1 + 1  # the pair over its budget after two batches, then each alone after one


def test_engine_flags():
    opts = parse("--chain.path", "c.db", "--vllm.tensor-parallel-size", "4", "--vllm.max-model-len", "8192",
                 "--vllm.gpu-memory-utilization", "0.85", "--dtype", "bfloat16").engine_options
    assert (opts.tensor_parallel_size, opts.max_model_len, opts.gpu_memory_utilization, opts.dtype) == (
        4, 8192, 0.85, "bfloat16")
    defaults = parse("--chain.path", "c.db").engine_options
    assert (defaults.device, defaults.dtype, defaults.tensor_parallel_size, defaults.max_model_len) == (
        "auto", "auto", 1, None)
    with pytest.raises(CortexError, match="gpu-memory-utilization"):
        parse("--chain.path", "c.db", "--vllm.gpu-memory-utilization", "1.5").engine_options


def test_the_vllm_engine_end_to_end_against_vllms_api_without_the_gpu(monkeypatch, tmp_path):
    """Everything but the GPU kernels: the project's LLM arguments, SamplingParams, LoRARequest per adapter,
    token-id prompts, the adapter folders vLLM reads, its outputs parsed into texts and token counts, and a
    vLLM error for one adapter, against a stand-in that checks arguments as vLLM's classes do
    (tests/support/fake_vllm.py)."""
    from adapter_builders import save_peft
    from fake_vllm import install
    from serve_fixtures import tiny_base
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cortex.data import build_samples, get_source
    from cortex.eval.engines import EngineOptions, Job, build_engine, lora_id
    from cortex.eval.prompts import prompt_ids
    from cortex.reward import RewardConfig

    calls = install(monkeypatch)
    base = tiny_base(tmp_path / "base", seed=0)
    adapters = {f"m{i}/lora@{i:040x}": save_peft(AutoModelForCausalLM.from_pretrained(base), tmp_path / f"a{i}",
                                                 seed=i, r=r, lora_alpha=2 * r)
                for i, r in enumerate((4, 8, 32))}  # the last one's rank is over the competition's 16
    frames = get_source("synthetic").load(["BTC"], "2024-01-01", "2024-06-30")
    rows = [s.row() for s in build_samples(frames, ["BTC"], [1], start="2024-06-01", end="2024-06-04")][:3]
    engine = build_engine("vllm", base, ("lora",), max_new_tokens=7, batch_size=2, max_rank=16,
                          options=EngineOptions(max_loras=2))
    assert calls.llm == [dict(model=str(base), tokenizer=str(base), trust_remote_code=False, enable_lora=True,
                              max_loras=2, max_lora_rank=16, seed=0, dtype="auto", tensor_parallel_size=1,
                              max_model_len=None, gpu_memory_utilization=0.9)]
    jobs = [Job("base", None)] + [Job(k, p) for k, p in adapters.items()]
    results = {r.key: r for r in engine.evaluate(rows, jobs, reward=RewardConfig(), time_budget=600.0)}

    bad = list(adapters)[2]
    assert results[bad].rewards is None
    assert results[bad].reason == "generation_failed: ValueError: LoRA rank 32 is greater than max_lora_rank 16."
    tokenizer = AutoTokenizer.from_pretrained(base)
    ids = [prompt_ids(tokenizer, r["prompt"]) for r in rows]  # the one prompt builder, as the other engines
    answers: dict[tuple, object] = {}
    for call in calls.generate:
        assert call["params"].temperature == 0 and call["params"].max_tokens == 7 and call["use_tqdm"] is False
        assert len(call["prompts"]) <= 2 * 2  # batch_size prompts x max_loras models
        for prompt, request, out in zip(call["prompts"], call["lora"], call["outputs"]):
            assert prompt["prompt_token_ids"] in ids
            if request is not None:
                assert request.lora_int_id == lora_id(request.lora_name)  # stable across rounds
                assert request.lora_path == str(adapters[request.lora_name])
            answers[(None if request is None else request.lora_name, tuple(prompt["prompt_token_ids"]))] = out
    for key in ["base", *list(adapters)[:2]]:
        mine = [answers[(None if key == "base" else key, tuple(i))].outputs[0] for i in ids]
        assert results[key].reason is None and len(results[key].rewards) == len(rows)
        assert results[key].completions == [o.text for o in mine]
        assert results[key].new_tokens == sum(len(o.token_ids) for o in mine)  # the EOS that ended a row counts
    outs = [o.outputs[0] for o in answers.values()]
    assert {o.finish_reason for o in outs} == {"stop", "length"}  # rows that ended early and rows that ran out
    assert any(tokenizer.pad_token_id in o.token_ids[:-1] for o in outs)  # a pad id generated as a token
